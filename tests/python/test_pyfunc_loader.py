"""End-to-end tests of the mlflowreg pyfunc loader: MLflow loads real R crates and runs them."""

import concurrent.futures
import gc
import importlib.util
import os
import struct
import subprocess
import tempfile
import time

import numpy as np
import pandas as pd
import pytest

from conftest import PYFUNC_SOURCE_DIR, build_crate_model, find_rscript, load_crate_model

R_IDENTITY = "function(data) data"


def import_loader_module():
    """Import the loader from the source tree under a name MLflow does not use."""
    spec = importlib.util.spec_from_file_location(
        "mlflowreg_pyfunc_under_test", PYFUNC_SOURCE_DIR / "mlflowreg_pyfunc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def r_string(path):
    """Return a path as an R string literal."""
    return '"' + path.as_posix().replace("\\", "\\\\").replace('"', '\\"') + '"'


# Predictions of a fitted R model


def test_lm_predictions_match_r_predict(crate_model, tmp_path):
    new_wt = np.array([1.5, 2.25, 3.0, 4.75, 5.5])
    new_hp = np.array([52, 110, 150, 230, 335], dtype=np.int64)
    new_data_path = tmp_path / "new_data.bin"
    np.concatenate([new_wt, new_hp.astype(np.float64)]).astype("<f8").tofile(new_data_path)
    mtcars_path = tmp_path / "mtcars.bin"
    expected_path = tmp_path / "expected.bin"

    # R writes the training inputs and its own predict() output as raw float64,
    # so the comparison below needs no text round trip.
    model = crate_model(
        "local({ fit <- lm(mpg ~ wt + hp, data = mtcars); "
        "function(data) predict(fit, newdata = data) })",
        r_setup=f"""
fit <- lm(mpg ~ wt + hp, data = mtcars)
new_values <- readBin({r_string(new_data_path)}, "double", n = 10L, size = 8L, endian = "little")
new_data <- data.frame(wt = new_values[1:5], hp = as.integer(new_values[6:10]))
writeBin(c(mtcars$wt, mtcars$hp), {r_string(mtcars_path)}, size = 8L, endian = "little")
expected <- c(predict(fit, newdata = mtcars), predict(fit, newdata = new_data))
writeBin(unname(expected), {r_string(expected_path)}, size = 8L, endian = "little")
""",
    )
    mtcars_values = np.fromfile(mtcars_path, dtype="<f8")
    expected = np.fromfile(expected_path, dtype="<f8")
    mtcars_frame = pd.DataFrame({"wt": mtcars_values[:32], "hp": mtcars_values[32:]})
    new_frame = pd.DataFrame({"wt": new_wt, "hp": new_hp})

    mtcars_result = model.predict(mtcars_frame)
    new_result = model.predict(new_frame)

    assert isinstance(mtcars_result, pd.Series)
    assert mtcars_result.dtype == np.float64
    np.testing.assert_array_equal(mtcars_result.to_numpy(), expected[:32])
    np.testing.assert_array_equal(new_result.to_numpy(), expected[32:])


# Round trip of every supported column type through function(data) data

LONG_TEXT = "\u00e9" * 12000  # 24000 UTF-8 bytes, above readBin()'s 10000-byte string limit


def mixed_frame():
    return pd.DataFrame(
        {
            "float": np.array([1.5, np.nan, -0.0, np.inf, 0.1 + 0.2, 5e-324]),
            "int32": np.array([1, -2, 0, 2**31 - 1, -(2**31) + 1, 7], dtype=np.int32),
            "int64": np.array([7, 0, -7, 123456789, -1, 2**31 - 1], dtype=np.int64),
            "nullable_int": pd.array([1, None, 3, -4, None, 0], dtype="Int64"),
            "bool": np.array([True, False, True, False, True, True]),
            "nullable_bool": pd.array([True, None, False, True, None, False], dtype="boolean"),
            "text": [
                "plain",
                None,
                "na\u00efve caf\u00e9 \u2013 \u6771\u4eac \U0001f600",
                "",
                "line\nbreak",
                LONG_TEXT,
            ],
            "category": pd.Categorical(["b", "a", None, "b", "a", "a"], categories=["c", "b", "a"]),
            "ordered": pd.Categorical(
                ["low", "high", "mid", None, "low", "high"],
                categories=["low", "mid", "high"],
                ordered=True,
            ),
        }
    )


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """Return the input frame and the result of sending it through an identity crate."""
    model_dir = build_crate_model(tmp_path_factory.mktemp("identity") / "model", R_IDENTITY)
    model = load_crate_model(model_dir)
    frame = mixed_frame()
    return frame, model.predict(frame)


# R integers come back as int64, pandas' default integer dtype, because R has
# one 32-bit integer type and cannot tell which numpy width the input had.
ROUND_TRIP_DTYPES = [
    ("float", "float64"),
    ("int32", "int64"),
    ("int64", "int64"),
    ("nullable_int", "Int64"),
    ("bool", "bool"),
    ("nullable_bool", "boolean"),
]


def test_round_trip_returns_data_frame(round_trip):
    _, result = round_trip
    assert isinstance(result, pd.DataFrame)


def test_round_trip_keeps_column_order(round_trip):
    frame, result = round_trip
    assert list(result.columns) == list(frame.columns)


@pytest.mark.parametrize("column, dtype", ROUND_TRIP_DTYPES)
def test_round_trip_numeric_dtype(round_trip, column, dtype):
    _, result = round_trip
    assert result[column].dtype == pd.api.types.pandas_dtype(dtype)


@pytest.mark.parametrize("column", ["text", "category", "ordered"])
def test_round_trip_keeps_input_dtype(round_trip, column):
    frame, result = round_trip
    assert result[column].dtype == frame[column].dtype


@pytest.mark.parametrize("column", list(mixed_frame().columns))
def test_round_trip_values(round_trip, column):
    frame, result = round_trip
    pd.testing.assert_series_equal(result[column], frame[column], check_dtype=False)


@pytest.mark.parametrize("column", ["nullable_int", "nullable_bool", "text", "category", "ordered"])
def test_round_trip_missing_positions(round_trip, column):
    frame, result = round_trip
    assert result[column].isna().tolist() == frame[column].isna().tolist()


def test_round_trip_doubles_bit_exact(round_trip):
    frame, result = round_trip
    sent = frame["float"].to_numpy()
    received = result["float"].to_numpy()
    present = ~np.isnan(sent)
    assert np.isnan(received).tolist() == np.isnan(sent).tolist()
    assert received[present].view(np.uint64).tolist() == sent[present].view(np.uint64).tolist()


def test_round_trip_non_ascii_text(round_trip):
    frame, result = round_trip
    assert result["text"][2] == frame["text"][2]


def test_round_trip_long_text(round_trip):
    _, result = round_trip
    assert result["text"][5] == LONG_TEXT


def test_round_trip_category_levels(round_trip):
    _, result = round_trip
    assert list(result["category"].cat.categories) == ["c", "b", "a"]


def test_round_trip_category_unordered(round_trip):
    _, result = round_trip
    assert result["category"].cat.ordered is False


def test_round_trip_ordered_levels(round_trip):
    _, result = round_trip
    assert list(result["ordered"].cat.categories) == ["low", "mid", "high"]
    assert result["ordered"].cat.ordered is True


# How R sees the input


def test_nan_reaches_r_as_na(crate_model):
    model = crate_model(
        "function(data) data.frame(is_na = is.na(data$x), is_nan = is.nan(data$x), "
        "is_infinite = is.infinite(data$x))"
    )
    result = model.predict(pd.DataFrame({"x": [1.0, np.nan, -np.inf]}))
    assert result["is_na"].tolist() == [False, True, False]
    assert result["is_nan"].tolist() == [False, False, False]
    assert result["is_infinite"].tolist() == [False, False, True]


def test_input_types_seen_by_r(crate_model):
    model = crate_model("function(data) vapply(data, function(x) class(x)[[1]], character(1))")
    frame = pd.DataFrame(
        {
            "small_int": np.array([1, 2], dtype=np.int64),
            "big_int": np.array([1, 2**40], dtype=np.int64),
            "min_int32": np.array([0, -(2**31)], dtype=np.int32),
            "small_uint": np.array([0, 2**31 - 1], dtype=np.uint64),
            "big_uint": np.array([0, 2**63], dtype=np.uint64),
            "float": [0.5, 1.5],
            "flag": [True, False],
            "text": ["a", "b"],
            "levels": pd.Categorical(["a", "b"]),
            "ranks": pd.Categorical(["a", "b"], ordered=True),
        }
    )
    result = model.predict(frame)
    # -2^31 is NA in R, so an int32 column holding it is sent as double.
    assert result.tolist() == [
        "integer",
        "numeric",
        "numeric",
        "integer",
        "numeric",
        "numeric",
        "logical",
        "character",
        "factor",
        "ordered",
    ]


def test_input_column_names_kept(crate_model):
    model = crate_model("function(data) names(data)")
    result = model.predict(pd.DataFrame({"my col": [1], "2nd": [2], "caf\u00e9": [3]}))
    assert result.tolist() == ["my col", "2nd", "caf\u00e9"]


def test_large_int64_sent_as_exact_double(crate_model):
    model = crate_model(R_IDENTITY)
    result = model.predict(pd.DataFrame({"x": np.array([2**40, -(2**52)], dtype=np.int64)}))
    assert result["x"].dtype == np.float64
    assert result["x"].tolist() == [2.0**40, -(2.0**52)]


def test_object_columns_converted_by_content(crate_model):
    model = crate_model(R_IDENTITY)
    frame = pd.DataFrame(
        {
            "text": pd.Series(["a", None], dtype=object),
            "flags": pd.Series([True, None], dtype=object),
            "counts": pd.Series([3, None], dtype=object),
            "missing": pd.Series([None, None], dtype=object),
        }
    )
    result = model.predict(frame)
    assert result["text"].tolist()[0] == "a"
    assert pd.isna(result["text"][1])
    assert result["flags"].dtype == "boolean"
    assert result["flags"].isna().tolist() == [False, True]
    assert result["counts"].dtype == "Int64"
    assert result["counts"].tolist()[0] == 3
    assert result["missing"].isna().tolist() == [True, True]


def test_zero_row_frame(crate_model):
    model = crate_model(R_IDENTITY)
    frame = pd.DataFrame(
        {
            "x": np.array([], dtype=np.float64),
            "n": np.array([], dtype=np.int64),
            "s": pd.Series([], dtype=object),
        }
    )
    result = model.predict(frame)
    assert list(result.columns) == ["x", "n", "s"]
    assert len(result) == 0
    assert result["x"].dtype == np.float64
    assert result["n"].dtype == np.int64


# Other input containers


def test_dict_input(crate_model):
    model = crate_model(R_IDENTITY)
    result = model.predict({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert list(result.columns) == ["a", "b"]
    assert result["a"].tolist() == [1.0, 2.0]
    assert result["b"].tolist() == ["x", "y"]


def test_series_input(crate_model):
    model = crate_model(R_IDENTITY)
    result = model.predict(pd.Series([1.5, 2.5], name="x"))
    assert list(result.columns) == ["x"]
    assert result["x"].tolist() == [1.5, 2.5]


def test_numpy_array_input(crate_model):
    model = crate_model(R_IDENTITY)
    result = model.predict(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    assert list(result.columns) == ["0", "1", "2"]
    assert result.to_numpy().tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


# R results other than a data frame


def test_factor_result_becomes_categorical(crate_model):
    model = crate_model(
        'function(data) factor(ifelse(data$x > 0, "pos", "neg"), levels = c("zero", "neg", "pos"))'
    )
    result = model.predict(pd.DataFrame({"x": [1.0, -1.0, np.nan, 2.0]}))
    assert isinstance(result, pd.Series)
    assert isinstance(result.dtype, pd.CategoricalDtype)
    assert list(result.cat.categories) == ["zero", "neg", "pos"]
    assert result.cat.ordered is False
    assert result.tolist()[:2] == ["pos", "neg"]
    assert pd.isna(result[2])
    assert result[3] == "pos"


def test_ordered_factor_result(crate_model):
    model = crate_model('function(data) factor(data$x, levels = c("b", "a"), ordered = TRUE)')
    result = model.predict(pd.DataFrame({"x": ["a", "b"]}))
    assert result.cat.ordered is True
    assert list(result.cat.categories) == ["b", "a"]


def test_character_result(crate_model):
    model = crate_model(
        'function(data) ifelse(is.na(data$name), NA_character_, paste0(data$name, "-\\u00e9"))'
    )
    result = model.predict(pd.DataFrame({"name": ["ann", None, "\u6771\u4eac"]}))
    assert isinstance(result, pd.Series)
    assert result[0] == "ann-\u00e9"
    assert pd.isna(result[1])
    assert result[2] == "\u6771\u4eac-\u00e9"


def test_integer_result_with_na(crate_model):
    model = crate_model("function(data) c(1L, NA, -3L)")
    result = model.predict(pd.DataFrame({"x": [0.0]}))
    assert result.dtype == "Int64"
    assert result.isna().tolist() == [False, True, False]
    assert result[2] == -3


def test_logical_result(crate_model):
    model = crate_model("function(data) data$x > 1")
    result = model.predict(pd.DataFrame({"x": [0.0, 2.0]}))
    assert result.dtype == np.bool_
    assert result.tolist() == [False, True]


def test_named_matrix_result(crate_model):
    model = crate_model("function(data) cbind(a = data$x, b = data$x * 2)")
    result = model.predict(pd.DataFrame({"x": [1.0, 2.5]}))
    assert isinstance(result, pd.DataFrame)
    assert list(result.columns) == ["a", "b"]
    assert result.to_numpy().tolist() == [[1.0, 2.0], [2.5, 5.0]]


def test_unnamed_matrix_result(crate_model):
    model = crate_model("function(data) matrix(1:6, nrow = 3)")
    result = model.predict(pd.DataFrame({"x": [0.0]}))
    assert list(result.columns) == ["V1", "V2"]
    assert result["V2"].tolist() == [4, 5, 6]


def test_result_column_names_kept(crate_model):
    model = crate_model('function(data) data.frame("my col" = 1, check.names = FALSE)')
    result = model.predict(pd.DataFrame({"x": [0.0]}))
    assert list(result.columns) == ["my col"]


# Errors


def test_r_error_message_reaches_python(crate_model):
    model = crate_model('function(data) stop("bad input: x")')
    with pytest.raises(RuntimeError, match="bad input: x") as error:
        model.predict(pd.DataFrame({"x": [1.0]}))
    assert type(error.value).__name__ == "RPredictError"
    assert "calling the model" in str(error.value)


def test_r_warning_logged(crate_model, caplog):
    model = crate_model('function(data) { warning("check the units"); data }')
    with caplog.at_level("WARNING", logger="mlflowreg_pyfunc"):
        result = model.predict(pd.DataFrame({"x": [1.0]}))
    assert result["x"].tolist() == [1.0]
    assert "check the units" in caplog.text


def test_unsupported_result_class_rejected(crate_model):
    model = crate_model("function(data) Sys.Date()")
    with pytest.raises(RuntimeError, match="class 'Date'"):
        model.predict(pd.DataFrame({"x": [1.0]}))


def test_list_result_rejected(crate_model):
    model = crate_model("function(data) list(1, 2)")
    with pytest.raises(RuntimeError, match="Return an atomic vector, a matrix or a data frame"):
        model.predict(pd.DataFrame({"x": [1.0]}))


def test_crate_without_function_rejected(crate_model):
    model = crate_model("42")
    with pytest.raises(RuntimeError, match="instead of a function"):
        model.predict(pd.DataFrame({"x": [1.0]}))


def test_unsupported_input_dtype_rejected(crate_model):
    model = crate_model(R_IDENTITY)
    frame = pd.DataFrame({"when": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(TypeError, match="'when'"):
        model.predict(frame)


def test_missing_rscript_named_in_error(crate_model, monkeypatch, tmp_path):
    model = crate_model(R_IDENTITY)
    monkeypatch.setenv("MLFLOWREG_RSCRIPT", str(tmp_path / "no-such-dir" / "Rscript"))
    with pytest.raises(FileNotFoundError, match="MLFLOWREG_RSCRIPT"):
        model.predict(pd.DataFrame({"x": [1.0]}))


def test_rscript_from_env_used(crate_model, monkeypatch):
    model = crate_model(R_IDENTITY)
    monkeypatch.setenv("MLFLOWREG_RSCRIPT", find_rscript())
    monkeypatch.setenv("PATH", "")
    result = model.predict(pd.DataFrame({"x": [1.0]}))
    assert result["x"].tolist() == [1.0]


def test_timeout_kills_rscript(crate_model, monkeypatch):
    # The child process of R holds the output pipes open, so predict returns in
    # time only if the whole process group is killed.
    model = crate_model('function(data) { system("sleep 60"); data }')
    monkeypatch.setenv("MLFLOWREG_PREDICT_TIMEOUT", "2")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="MLFLOWREG_PREDICT_TIMEOUT"):
        model.predict(pd.DataFrame({"x": [1.0]}))
    assert time.monotonic() - started < 30


def test_invalid_timeout_rejected(crate_model, monkeypatch):
    model = crate_model(R_IDENTITY)
    monkeypatch.setenv("MLFLOWREG_PREDICT_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="MLFLOWREG_PREDICT_TIMEOUT"):
        model.predict(pd.DataFrame({"x": [1.0]}))


def test_temporary_files_removed(crate_model, monkeypatch, tmp_path):
    good_model = crate_model(R_IDENTITY)
    failing_model = crate_model('function(data) stop("bad input: x")')
    temp_root = tmp_path / "temp-root"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))

    good_model.predict(pd.DataFrame({"x": [1.0]}))
    assert list(temp_root.iterdir()) == []

    with pytest.raises(RuntimeError):
        failing_model.predict(pd.DataFrame({"x": [1.0]}))
    assert list(temp_root.iterdir()) == []


def test_r_session_temp_dir_inside_work_dir(crate_model, monkeypatch, tmp_path):
    model = crate_model("function(data) tempdir()")
    temp_root = tmp_path / "temp-root"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))

    result = model.predict(pd.DataFrame({"x": [1.0]}))
    assert result[0].startswith(str(temp_root) + "/mlflowreg-")
    assert list(temp_root.iterdir()) == []


# Exchange format checks


def test_decoder_rejects_wrong_magic():
    loader = import_loader_module()
    with pytest.raises(ValueError, match="not an mlflowreg exchange file"):
        loader._decode_exchange(b"RDX3\n" + bytes(20))


def test_decoder_rejects_other_version():
    loader = import_loader_module()
    data = b"MLFLOWREGX" + struct.pack("<iiii", 2, 1, 0, 0)
    with pytest.raises(ValueError, match="version 2"):
        loader._decode_exchange(data)


def test_decoder_rejects_truncated_file():
    loader = import_loader_module()
    data = b"MLFLOWREGX" + struct.pack("<iiiii", 1, 2, 3, 1, 0) + struct.pack("<i", 2)
    with pytest.raises(ValueError, match="truncated"):
        loader._decode_exchange(data)


def test_r_script_rejects_wrong_magic(tmp_path):
    crate_dir = build_crate_model(tmp_path / "model", R_IDENTITY)
    input_path = tmp_path / "input.bin"
    input_path.write_bytes(b"not an exchange file")
    error_path = tmp_path / "error.txt"

    completed = subprocess.run(
        [
            find_rscript(),
            "--vanilla",
            str(crate_dir / "code" / "mlflowreg_predict.R"),
            str(crate_dir / "crate.bin"),
            str(input_path),
            str(tmp_path / "output.bin"),
            str(error_path),
        ],
        capture_output=True,
        timeout=120,
    )
    error_lines = error_path.read_text(encoding="utf-8").splitlines()
    assert completed.returncode == 1
    assert error_lines[0] == "reading the model input"
    assert "not an mlflowreg exchange file" in error_lines[1]


def test_text_in_c_locale(crate_model, monkeypatch):
    # R reads the input strings as UTF-8 even when its locale is not UTF-8.
    monkeypatch.setenv("LC_ALL", "C")
    model = crate_model("function(data) data.frame(text = data$text, chars = nchar(data$text))")
    result = model.predict(pd.DataFrame({"text": ["\u00e9", "\u6771\u4eac", "a"]}))
    assert result["chars"].tolist() == [1, 2, 1]
    assert result["text"].tolist() == ["\u00e9", "\u6771\u4eac", "a"]


# The R worker process: one per loaded model, reused, restarted when it dies

R_PID = "function(data) data.frame(pid = Sys.getpid(), x = data$x)"


def worker_pid(model, x=1.0):
    return int(model.predict(pd.DataFrame({"x": [x]}))["pid"].iloc[0])


def process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_reused_across_calls(crate_model):
    model = crate_model(R_PID)
    pids = {worker_pid(model, x) for x in (1.0, 2.0, 3.0)}
    assert len(pids) == 1


def test_separate_models_get_separate_workers(crate_model):
    first = crate_model(R_PID)
    second = crate_model(R_PID)
    assert worker_pid(first) != worker_pid(second)


def test_worker_restarted_after_exit(crate_model):
    model = crate_model(
        "function(data) { if (data$x[1] < 0) quit(status = 3L); "
        "data.frame(pid = Sys.getpid(), x = data$x) }"
    )
    first_pid = worker_pid(model)
    with pytest.raises(RuntimeError, match="exited with status 3") as error:
        model.predict(pd.DataFrame({"x": [-1.0]}))
    assert type(error.value).__name__ == "RPredictError"
    second_pid = worker_pid(model)
    assert second_pid != first_pid
    assert not process_exists(first_pid)


def test_worker_restarted_after_timeout(crate_model, monkeypatch):
    model = crate_model(
        "function(data) { if (data$x[1] < 0) Sys.sleep(60); "
        "data.frame(pid = Sys.getpid(), x = data$x) }"
    )
    first_pid = worker_pid(model)
    monkeypatch.setenv("MLFLOWREG_PREDICT_TIMEOUT", "2")
    with pytest.raises(TimeoutError):
        model.predict(pd.DataFrame({"x": [-1.0]}))
    assert not process_exists(first_pid)
    monkeypatch.delenv("MLFLOWREG_PREDICT_TIMEOUT")
    assert worker_pid(model) != first_pid


def test_worker_stops_with_model(crate_model):
    model = crate_model(R_PID)
    pid = worker_pid(model)
    del model
    gc.collect()
    deadline = time.monotonic() + 10
    while process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_exists(pid)


def test_r_output_kept_off_the_pipes(crate_model, caplog):
    # Printed output, messages and a child process writing to the real
    # stdout must not mix with the responses.
    model = crate_model(
        'function(data) { print(data); cat("noise\\n"); message("note"); '
        'system("echo child output; echo child error 1>&2"); data }'
    )
    with caplog.at_level("DEBUG", logger="mlflowreg_pyfunc"):
        for value in (1.0, 2.0):
            result = model.predict(pd.DataFrame({"x": [value]}))
            assert result["x"].tolist() == [value]
    assert "noise" in caplog.text
    assert "note" in caplog.text


def test_concurrent_predicts_share_one_worker(crate_model):
    model = crate_model(R_PID)

    def call(value):
        return worker_pid(model, value), value

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(call, [float(i) for i in range(12)]))
    assert len({pid for pid, _ in results}) == 1


def test_crate_error_reported_on_every_call(crate_model):
    model = crate_model("42")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="loading the crate"):
            model.predict(pd.DataFrame({"x": [1.0]}))
