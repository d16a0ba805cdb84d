"""MLflow ``python_function`` loader for R models saved by mlflowreg.

MLflow imports this module as the flavor's ``loader_module`` after it puts the
model's ``code`` directory on ``sys.path``, and calls ``_load_pyfunc`` with the
path of ``crate.bin``. The first ``predict`` call starts one R worker process,
``Rscript --vanilla mlflowreg_predict.R --worker <crate> <request fd>
<response fd>``, which loads the crate once and then serves every later call
of that model over two pipes (the protocol is described in
``mlflowreg_predict.R``). A worker that died, or that was started by another
process before a fork, is replaced on the next call. A call that runs longer
than ``MLFLOWREG_PREDICT_TIMEOUT`` seconds kills the worker and its children.
``mlflowreg_predict.R`` is taken from the model's ``code`` directory, and both
files must speak the same exchange format. Because of ``--vanilla``, R reads
no ``~/.Rprofile`` or ``~/.Renviron``, so packages that the crate needs must
be installed in R's default library paths or in a directory named by
``R_LIBS`` in the environment.

Each call gets a temporary work directory, removed when the call returns:
R's ``tempdir()`` lives in it during the call, and R's printed output and
messages go to files in it, which are logged (output at DEBUG, messages and
warnings at WARNING level).

Exchange format, version 1 (the same layout in both directions):

    file      = magic | version | kind | nrow | ncol | column * ncol
    magic     = the 10 ASCII bytes "MLFLOWREGX"
    version   = int32, currently 1
    kind      = int32, 1 for a data frame, 2 for an atomic vector
                (a vector is sent as one column with an empty name)
    nrow      = int32 number of rows, ncol = int32 number of columns
    column    = name | type | values
    name      = a character block with one element
    type      = int32 R type code, and values depends on it:
        1 logical   nrow int32 (0 FALSE, 1 TRUE, -2^31 NA)
        2 integer   nrow int32 (-2^31 is NA, as in R)
        3 double    nrow IEEE 754 float64 with bits unchanged, and NA is R's NA_real_
                    (bits 0x7FF00000000007A2)
        4 character a character block with nrow elements
        5 factor    ordered int32 (0 or 1) | nlevels int32 |
                    levels as a character block without NA |
                    nrow int32 codes (1-based, -2^31 NA)
    character block of n elements = n int32 byte lengths (-1 for NA), then
        the UTF-8 bytes of all non-NA elements, concatenated

All numbers are little-endian. R integers are 32-bit and R reserves -2^31 for
NA, so that value is never a valid integer in the exchange.
"""

import collections
import logging
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import weakref

import numpy as np
import pandas as pd

_LOGGER = logging.getLogger(__name__)

RSCRIPT_ENV = "MLFLOWREG_RSCRIPT"
TIMEOUT_ENV = "MLFLOWREG_PREDICT_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 600.0

_R_SCRIPT_NAME = "mlflowreg_predict.R"

_MAGIC = b"MLFLOWREGX"
_REQUEST_MAGIC = b"MLFLOWREGQ"
_STATUS_OK = 0
_STATUS_R_ERROR = 1
# Characters of the worker's own stderr kept for error messages.
_STDERR_TAIL_CHARS = 2000
# Seconds a worker gets to exit after its request pipe is closed.
_STOP_GRACE_SECONDS = 2.0
_FORMAT_VERSION = 1

_KIND_DATA_FRAME = 1
_KIND_VECTOR = 2

_TYPE_LOGICAL = 1
_TYPE_INTEGER = 2
_TYPE_DOUBLE = 3
_TYPE_CHARACTER = 4
_TYPE_FACTOR = 5

_INT32 = np.dtype("<i4")
_FLOAT64 = np.dtype("<f8")
_R_NA_INTEGER = -(2**31)
_R_INTEGER_MIN = -(2**31) + 1
_R_INTEGER_MAX = 2**31 - 1
_R_NA_REAL = np.array([0x7FF00000000007A2], dtype="<u8").view(_FLOAT64)[0]

# The dtype that pandas gives a column of Python strings: object before
# pandas 3, the "str" string dtype from pandas 3 on.
_DEFAULT_STRING_DTYPE = pd.Series(["x"]).dtype


class RPredictError(RuntimeError):
    """Failure of Rscript while it loads the crate, runs the model or writes the result."""


class _RCrateModel:
    """R function stored in a crate file, run by one R worker process per model."""

    def __init__(self, crate_path, script_path):
        self.crate_path = crate_path
        self.script_path = script_path
        self._worker = None
        # Serving frameworks may call predict from several threads, and the
        # worker runs one request at a time.
        self._lock = threading.Lock()

    def predict(self, model_input, params=None):
        """Run the R function on ``model_input`` and return its result.

        An R atomic vector becomes a pandas Series, and an R data frame or
        matrix becomes a DataFrame with R's column names. Raises RPredictError
        with R's error message when R fails, and TimeoutError when the call
        takes longer than MLFLOWREG_PREDICT_TIMEOUT seconds.
        """
        if params:
            raise ValueError(
                f"params are not supported by R crate models, but got {sorted(params)}. "
                "Call predict without params."
            )
        frame = _to_data_frame(model_input)
        payload = _encode_data_frame(frame)
        rscript = _find_rscript()
        timeout = _read_timeout()
        deadline = time.monotonic() + timeout

        with self._lock:
            work_dir = tempfile.mkdtemp(prefix="mlflowreg-")
            try:
                worker = self._current_worker(rscript, work_dir)
                try:
                    status, body = worker.request(work_dir, payload, deadline)
                except TimeoutError:
                    self._stop_worker()
                    raise TimeoutError(
                        f"the R model returned no result within {timeout:g} seconds, so its R "
                        f"process was killed. Set {TIMEOUT_ENV} to allow more time."
                    ) from None
                except _WorkerDied as died:
                    self._stop_worker()
                    raise RPredictError(str(died)) from None
                _log_r_output(work_dir)
            finally:
                shutil.rmtree(work_dir, ignore_errors=True)

        if status == _STATUS_OK:
            return _decode_exchange(body)
        step, _, condition = body.decode("utf-8", errors="replace").partition("\n")
        raise RPredictError(f"R prediction failed while {step}: {condition}")

    def _current_worker(self, rscript, work_dir):
        worker = self._worker
        if worker is not None and not worker.usable(rscript):
            self._stop_worker()
            worker = None
        if worker is None:
            worker = _RWorker(rscript, self.script_path, self.crate_path, work_dir)
            self._worker = worker
            # Stops the worker when the model is garbage collected or Python exits.
            self._finalizer = weakref.finalize(self, worker.stop)
        return worker

    def _stop_worker(self):
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


class _WorkerDied(Exception):
    """The R worker exited or closed its pipes during a request."""


class _RWorker:
    """One ``mlflowreg_predict.R --worker`` process and its two pipes."""

    def __init__(self, rscript, script_path, crate_path, work_dir):
        self.rscript = rscript
        self.owner_pid = os.getpid()
        self._stderr_tail = collections.deque(maxlen=_STDERR_TAIL_CHARS)
        request_read, self._request_write = os.pipe()
        self._response_read, response_write = os.pipe()
        try:
            # A new session makes R the leader of its own process group, so a
            # timeout also kills processes that the model started with system().
            # TMPDIR puts R's first session temporary directory in the work
            # directory of the first request.
            self.process = subprocess.Popen(
                [
                    rscript,
                    "--vanilla",
                    script_path,
                    "--worker",
                    crate_path,
                    str(request_read),
                    str(response_write),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(os.environ, TMPDIR=work_dir),
                pass_fds=(request_read, response_write),
                start_new_session=True,
            )
        except BaseException:
            os.close(self._request_write)
            os.close(self._response_read)
            raise
        finally:
            os.close(request_read)
            os.close(response_write)
        # Non-blocking, so a request never blocks past its deadline when R
        # stops reading.
        os.set_blocking(self._request_write, False)
        for stream, level in ((self.process.stdout, logging.DEBUG), (self.process.stderr, logging.WARNING)):
            threading.Thread(target=self._drain, args=(stream, level), daemon=True).start()

    def _drain(self, stream, level):
        """Log what R or its child processes write to the real stdout or stderr."""
        for line in iter(stream.readline, b""):
            text = line.decode("utf-8", errors="replace")
            if level == logging.WARNING:
                self._stderr_tail.extend(text)
            _LOGGER.log(level, "R worker %d: %s", self.process.pid, text.rstrip("\n"))
        stream.close()

    def usable(self, rscript):
        return (
            self.process.poll() is None
            and self.owner_pid == os.getpid()
            and self.rscript == rscript
        )

    def request(self, work_dir, payload, deadline):
        """Send one request and return ``(status, body)``."""
        directory = work_dir.encode("utf-8")
        header = (
            _REQUEST_MAGIC
            + struct.pack("<i", len(directory))
            + directory
            + struct.pack("<d", float(len(payload)))
        )
        try:
            _write_all(self._request_write, header, deadline)
            _write_all(self._request_write, payload, deadline)
        except BrokenPipeError:
            raise _WorkerDied(self._describe_exit()) from None
        status = struct.unpack("<i", self._read_exact(4, deadline))[0]
        length = struct.unpack("<d", self._read_exact(8, deadline))[0]
        body = self._read_exact(int(length), deadline)
        if status not in (_STATUS_OK, _STATUS_R_ERROR):
            raise _WorkerDied(f"the R worker sent an unknown status {status}")
        return status, body

    def _read_exact(self, size, deadline):
        chunks = []
        remaining = size
        while remaining > 0:
            _wait_for(self._response_read, deadline, readable=True)
            chunk = os.read(self._response_read, min(remaining, 1 << 20))
            if not chunk:
                raise _WorkerDied(self._describe_exit())
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _describe_exit(self):
        try:
            returncode = self.process.wait(timeout=_STOP_GRACE_SECONDS)
            message = f"the R worker exited with status {returncode} during the prediction"
        except subprocess.TimeoutExpired:
            message = "the R worker closed its response pipe during the prediction"
        stderr_text = "".join(self._stderr_tail).strip()
        if stderr_text:
            message += f"\nRscript stderr (last {_STDERR_TAIL_CHARS} characters):\n{stderr_text}"
        return message

    def stop(self):
        """Close the request pipe, so R exits, and kill the process group if it does not."""
        for fd_name in ("_request_write", "_response_read"):
            fd = getattr(self, fd_name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, fd_name, None)
        if self.owner_pid != os.getpid():
            return
        try:
            self.process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        _kill_process_group(self.process)
        self.process.wait()


def _wait_for(fd, deadline, readable):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError()
    if readable:
        ready, _, _ = select.select([fd], [], [], remaining)
    else:
        _, ready, _ = select.select([], [fd], [], remaining)
    if not ready:
        raise TimeoutError()


def _write_all(fd, data, deadline):
    """Write all of ``data`` to the non-blocking pipe ``fd`` before ``deadline``."""
    view = memoryview(data)
    while view:
        _wait_for(fd, deadline, readable=False)
        try:
            written = os.write(fd, view[: 1 << 20])
        except BlockingIOError:
            continue
        view = view[written:]


def _log_r_output(work_dir):
    """Log what R printed (DEBUG) and its messages and warnings (WARNING)."""
    for name, level in (("stdout.txt", logging.DEBUG), ("stderr.txt", logging.WARNING)):
        path = os.path.join(work_dir, name)
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", errors="replace").strip()
        except FileNotFoundError:
            continue
        if text:
            label = "printed to stdout" if level == logging.DEBUG else "wrote to stderr"
            _LOGGER.log(level, "R model %s:\n%s", label, text)


def _load_pyfunc(data_path, model_config=None):
    """Create the pyfunc model for the crate file at ``data_path``.

    MLflow passes ``model_config`` only when the model was saved or loaded with
    one. R crates take no configuration, so it is accepted and not used.
    """
    crate_path = os.path.abspath(data_path)
    if not os.path.isfile(crate_path):
        raise FileNotFoundError(f"R crate file not found: {crate_path}")

    # Python imports this module once per process, so __file__ can belong to
    # the code directory of another model loaded earlier. The R script of the
    # model being loaded is therefore preferred over the one next to __file__.
    candidates = [
        os.path.join(os.path.dirname(crate_path), "code", _R_SCRIPT_NAME),
        os.path.join(os.path.dirname(os.path.abspath(__file__)), _R_SCRIPT_NAME),
    ]
    for script_path in candidates:
        if os.path.isfile(script_path):
            return _RCrateModel(crate_path, script_path)
    raise FileNotFoundError(
        f"{_R_SCRIPT_NAME} not found at {' or '.join(candidates)}. "
        "The model's code directory is incomplete, so save the model again."
    )


# Running Rscript


def _find_rscript():
    """Return the Rscript path from MLFLOWREG_RSCRIPT, else from PATH."""
    configured = os.environ.get(RSCRIPT_ENV)
    if configured:
        if not os.path.isfile(configured):
            raise FileNotFoundError(
                f"{RSCRIPT_ENV} is set to {configured!r}, but no file exists there. "
                f"Set {RSCRIPT_ENV} to the path of the Rscript executable, "
                "or unset it to search PATH."
            )
        if not os.access(configured, os.X_OK):
            raise PermissionError(
                f"{RSCRIPT_ENV} is set to {configured!r}, but that file is not executable. "
                f"Set {RSCRIPT_ENV} to the path of the Rscript executable."
            )
        return configured

    found = shutil.which("Rscript")
    if found is None:
        raise FileNotFoundError(
            "Rscript was not found on PATH and MLFLOWREG_RSCRIPT is not set. "
            "Install R or set MLFLOWREG_RSCRIPT to the path of the Rscript executable."
        )
    return found


def _read_timeout():
    """Return the Rscript timeout in seconds from MLFLOWREG_PREDICT_TIMEOUT."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None or text.strip() == "":
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"{TIMEOUT_ENV} must be a positive number of seconds, but is {text!r}."
        )
    return seconds


def _kill_process_group(process):
    if hasattr(os, "killpg"):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        process.kill()


# Input conversion


def _to_data_frame(model_input):
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, pd.Series):
        return model_input.to_frame()
    if isinstance(model_input, dict):
        return pd.DataFrame(model_input)
    if isinstance(model_input, np.ndarray):
        if model_input.ndim != 2:
            raise ValueError(
                f"a numpy array input must be 2-D, but has {model_input.ndim} dimensions."
            )
        return pd.DataFrame(model_input)
    raise TypeError(
        "model input must be a pandas DataFrame, a dict of columns, a pandas Series "
        f"or a 2-D numpy array, but is {type(model_input).__name__}."
    )


# Encoding pandas data for R


def _encode_data_frame(frame):
    nrow = len(frame.index)
    chunks = [
        _MAGIC,
        _pack_int32(_FORMAT_VERSION),
        _pack_int32(_KIND_DATA_FRAME),
        _pack_int32(_check_int32_count(nrow, "rows")),
        _pack_int32(_check_int32_count(frame.shape[1], "columns")),
    ]
    # iloc by position keeps columns with duplicate names apart.
    for position, name in enumerate(frame.columns):
        column_name = str(name)
        chunks.append(_encode_strings([column_name], column_name))
        chunks.extend(_encode_column(column_name, frame.iloc[:, position]))
    return b"".join(chunks)


def _encode_column(name, series):
    """Return the type code and values of one column as a list of byte strings."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _encode_factor(name, series)

    is_object = dtype == object
    if is_object:
        series = _convert_object_column(name, series)
        dtype = series.dtype
        is_object = dtype == object

    if pd.api.types.is_bool_dtype(dtype):
        return [_pack_int32(_TYPE_LOGICAL), _encode_logical(series)]
    if pd.api.types.is_integer_dtype(dtype):
        return _encode_integer(series)
    if pd.api.types.is_float_dtype(dtype):
        return [_pack_int32(_TYPE_DOUBLE), _encode_double(series)]
    if is_object or isinstance(dtype, pd.StringDtype):
        values = series.to_numpy(dtype=object, na_value=None).tolist()
        return [_pack_int32(_TYPE_CHARACTER), _encode_strings(values, name)]
    raise TypeError(
        f"column {name!r} has dtype {dtype}, which cannot be sent to R. Supported are "
        "float, integer, bool, string (object of str) and categorical columns."
    )


def _convert_object_column(name, series):
    """Convert an object column to the dtype that its non-missing values share.

    Object columns come from dicts with None, JSON input and older pandas. A
    column of str stays object and is sent as character.
    """
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("string", "empty"):
        return series
    if inferred == "boolean":
        return series.astype("boolean")
    if inferred == "integer":
        return series.astype("Int64")
    if inferred in ("floating", "mixed-integer-float"):
        return series.astype("float64")
    raise TypeError(
        f"column {name!r} is an object column with values of kind {inferred!r}. "
        "R needs one type per column, so convert it to str, bool, int or float."
    )


def _encode_logical(series):
    missing = series.isna().to_numpy(dtype=bool)
    values = series.to_numpy(dtype=bool, na_value=False).astype(_INT32)
    values[missing] = _R_NA_INTEGER
    return values.tobytes()


def _encode_integer(series):
    """Encode integers as R integers when all fit in 32 bits, else as R doubles.

    R doubles hold integers exactly only up to 2^53 in magnitude, so larger
    values are rounded.
    """
    missing = series.isna().to_numpy(dtype=bool)
    if isinstance(series.dtype, np.dtype):
        values = series.to_numpy()
    else:
        values = series.to_numpy(dtype=series.dtype.numpy_dtype, na_value=0)

    present = values[~missing]
    fits_r_integer = present.size == 0 or (
        present.min() >= _R_INTEGER_MIN and present.max() <= _R_INTEGER_MAX
    )
    if fits_r_integer:
        encoded = values.astype(_INT32)
        encoded[missing] = _R_NA_INTEGER
        return [_pack_int32(_TYPE_INTEGER), encoded.tobytes()]

    encoded = values.astype(_FLOAT64)
    encoded[missing] = _R_NA_REAL
    return [_pack_int32(_TYPE_DOUBLE), encoded.tobytes()]


def _encode_double(series):
    """Encode floats bit for bit, except that every NaN and NA becomes R's NA_real_.

    pandas marks missing floats with NaN, and R models test for missing values
    with is.na(), which is TRUE for NA_real_. Infinities and -0.0 pass unchanged.
    """
    values = np.array(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=_FLOAT64)
    values[np.isnan(values)] = _R_NA_REAL
    return values.tobytes()


def _encode_factor(name, series):
    """Encode a Categorical as an R factor whose levels are the categories as str."""
    levels = [str(category) for category in series.cat.categories]
    if len(set(levels)) != len(levels):
        raise ValueError(
            f"categorical column {name!r} has categories that are equal as text, but "
            "R factor levels must be unique. Rename the categories."
        )
    codes = series.cat.codes.to_numpy().astype(_INT32)
    codes = np.where(codes < 0, _R_NA_INTEGER, codes + 1).astype(_INT32)
    return [
        _pack_int32(_TYPE_FACTOR),
        _pack_int32(1 if series.cat.ordered else 0),
        _pack_int32(len(levels)),
        _encode_strings(levels, name),
        codes.tobytes(),
    ]


def _encode_strings(values, name):
    """Encode a list of str and None as a character block."""
    lengths = np.empty(len(values), dtype=_INT32)
    encoded_values = []
    for index, value in enumerate(values):
        if value is None:
            lengths[index] = -1
            continue
        if not isinstance(value, str):
            raise TypeError(
                f"column {name!r} contains {type(value).__name__} value {value!r} at row "
                f"{index} among strings, but R needs one type per column."
            )
        encoded = value.encode("utf-8")
        if b"\x00" in encoded:
            raise ValueError(
                f"column {name!r} contains a string with a NUL character at row {index}, "
                "but R strings cannot contain NUL."
            )
        lengths[index] = _check_int32_count(len(encoded), "bytes in one string")
        encoded_values.append(encoded)
    return lengths.tobytes() + b"".join(encoded_values)


def _pack_int32(value):
    return struct.pack("<i", value)


def _check_int32_count(count, item_name):
    if count > _R_INTEGER_MAX:
        raise ValueError(
            f"the exchange with R allows at most {_R_INTEGER_MAX} {item_name}, but got {count}."
        )
    return count


# Decoding R results


class _ExchangeReader:
    """Sequential reader over the bytes of an exchange file."""

    def __init__(self, data):
        self.data = data
        self.offset = 0

    def take(self, size):
        end = self.offset + size
        if end > len(self.data):
            raise ValueError(
                f"R result file is truncated: needed {size} bytes at offset "
                f"{self.offset}, but the file has {len(self.data)} bytes."
            )
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def int32(self):
        return struct.unpack("<i", self.take(4))[0]

    def array(self, dtype, count):
        return np.frombuffer(self.take(dtype.itemsize * count), dtype=dtype).copy()

    def strings(self, count):
        lengths = self.array(_INT32, count)
        values = []
        for length in lengths.tolist():
            if length < 0:
                values.append(None)
            else:
                values.append(self.take(length).decode("utf-8"))
        return values


def _decode_exchange(data):
    """Decode an exchange file written by R into a pandas Series or DataFrame."""
    reader = _ExchangeReader(data)
    magic = data[: len(_MAGIC)]
    if magic != _MAGIC:
        raise ValueError(
            f"R result is not an mlflowreg exchange file: it starts with {magic!r} "
            f"instead of {_MAGIC!r}."
        )
    reader.take(len(_MAGIC))

    version = reader.int32()
    if version != _FORMAT_VERSION:
        raise ValueError(
            f"R result uses exchange format version {version}, but this loader reads "
            f"version {_FORMAT_VERSION}. {_R_SCRIPT_NAME} and mlflowreg_pyfunc.py "
            "come from different mlflowreg releases, so save the model again."
        )

    kind = reader.int32()
    nrow = reader.int32()
    ncol = reader.int32()
    if kind not in (_KIND_DATA_FRAME, _KIND_VECTOR) or nrow < 0 or ncol < 0:
        raise ValueError(
            f"R result has an invalid header: kind {kind}, {nrow} rows, {ncol} columns."
        )
    if kind == _KIND_VECTOR and ncol != 1:
        raise ValueError(f"R result is a vector but has {ncol} columns instead of 1.")

    names = []
    columns = []
    for _ in range(ncol):
        names.append(reader.strings(1)[0])
        columns.append(_decode_column(reader, nrow))
    if reader.offset != len(data):
        raise ValueError(
            f"R result has {len(data) - reader.offset} bytes after the last column."
        )

    if kind == _KIND_VECTOR:
        return columns[0]
    if ncol == 0:
        return pd.DataFrame(index=pd.RangeIndex(nrow))
    frame = pd.DataFrame({position: column for position, column in enumerate(columns)})
    frame.columns = names
    return frame


def _decode_column(reader, nrow):
    type_code = reader.int32()
    if type_code == _TYPE_LOGICAL:
        values = reader.array(_INT32, nrow)
        missing = values == _R_NA_INTEGER
        if missing.any():
            return pd.Series(pd.arrays.BooleanArray(values == 1, missing))
        return pd.Series(values == 1)

    if type_code == _TYPE_INTEGER:
        values = reader.array(_INT32, nrow).astype(np.int64)
        missing = values == _R_NA_INTEGER
        if missing.any():
            return pd.Series(pd.arrays.IntegerArray(values, missing))
        return pd.Series(values)

    if type_code == _TYPE_DOUBLE:
        return pd.Series(reader.array(_FLOAT64, nrow).astype(np.float64))

    if type_code == _TYPE_CHARACTER:
        return pd.Series(reader.strings(nrow), dtype=_DEFAULT_STRING_DTYPE)

    if type_code == _TYPE_FACTOR:
        ordered = reader.int32() == 1
        nlevels = reader.int32()
        levels = reader.strings(nlevels)
        codes = reader.array(_INT32, nrow)
        codes = np.where(codes == _R_NA_INTEGER, -1, codes - 1)
        categories = pd.Index(levels, dtype=_DEFAULT_STRING_DTYPE)
        return pd.Series(pd.Categorical.from_codes(codes, categories=categories, ordered=ordered))

    raise ValueError(f"R result has a column with unknown type code {type_code}.")
