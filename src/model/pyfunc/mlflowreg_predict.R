# R side of the mlflowreg python_function flavor.
#
# Two modes:
#
#   Rscript --vanilla mlflowreg_predict.R <crate> <input> <output> <error>
#     One prediction: loads the R function from <crate> (written by
#     saveRDS(serialize(fn, NULL))), reads a data frame from <input>, calls the
#     function on it as R mlflow does (do.call(fn, list(data))) and writes the
#     result to <output>. On any error it writes the failed step on the first
#     line of <error>, R's condition message on the following lines, and exits
#     with status 1.
#
#   Rscript --vanilla mlflowreg_predict.R --worker <crate> <request fd> <response fd>
#     A worker that serves predictions until its request pipe closes, so R
#     starts and loads the crate once per model instead of once per call.
#     mlflowreg_pyfunc.py starts it and passes the two pipe ends as file
#     descriptors; the worker reads them through /dev/fd (Linux and macOS).
#     Protocol, all numbers little-endian:
#       request  = "MLFLOWREGQ" | int32 byte length | UTF-8 work directory |
#                  float64 byte length | input in the exchange format
#       response = int32 status | float64 byte length | body
#     Status 0: the body is the result in the exchange format. Status 1: the
#     body is the failed step, a newline and R's condition message (UTF-8).
#     For each request the worker points TMPDIR and R's session temporary
#     directory into the work directory, which the caller deletes afterwards,
#     and diverts R's output and messages (warnings included) to stdout.txt and
#     stderr.txt in it, so the pipes carry nothing but the protocol.
#
# mlflowreg_pyfunc.py must use the same exchange format. The script needs only
# base R and whatever packages the crate itself uses.
#
# Exchange format, version 1 (the same layout in both directions):
#
#   file      = magic | version | kind | nrow | ncol | column * ncol
#   magic     = the 10 ASCII bytes "MLFLOWREGX"
#   version   = int32, currently 1
#   kind      = int32, 1 for a data frame, 2 for an atomic vector
#               (a vector is sent as one column with an empty name)
#   nrow      = int32 number of rows, ncol = int32 number of columns
#   column    = name | type | values
#   name      = a character block with one element
#   type      = int32 R type code, and values depends on it:
#     1 logical   nrow int32 (0 FALSE, 1 TRUE, -2^31 NA)
#     2 integer   nrow int32 (-2^31 is NA, as in R)
#     3 double    nrow IEEE 754 float64 with bits unchanged, and NA is R's NA_real_
#                 (bits 0x7FF00000000007A2)
#     4 character a character block with nrow elements
#     5 factor    ordered int32 (0 or 1) | nlevels int32 |
#                 levels as a character block without NA |
#                 nrow int32 codes (1-based, -2^31 NA)
#   character block of n elements = n int32 byte lengths (-1 for NA), then
#       the UTF-8 bytes of all non-NA elements, concatenated
#
# All numbers are little-endian. Strings are read with readChar() and byte
# lengths, because readBin() splits strings longer than 10000 bytes.

EXCHANGE_MAGIC <- "MLFLOWREGX"
EXCHANGE_VERSION <- 1L

KIND_DATA_FRAME <- 1L
KIND_VECTOR <- 2L

TYPE_LOGICAL <- 1L
TYPE_INTEGER <- 2L
TYPE_DOUBLE <- 3L
TYPE_CHARACTER <- 4L
TYPE_FACTOR <- 5L


# Reading the input data frame

read_int32 <- function(con, n = 1L) {
  values <- readBin(con, "integer", n = n, size = 4L, endian = "little")
  if (length(values) != n) {
    stop("input file is truncated")
  }
  values
}

read_float64 <- function(con, n) {
  values <- readBin(con, "double", n = n, size = 8L, endian = "little")
  if (length(values) != n) {
    stop("input file is truncated")
  }
  values
}

read_strings <- function(con, n) {
  lengths <- read_int32(con, n)
  missing <- lengths < 0L
  values <- readChar(con, pmax(lengths, 0L), useBytes = TRUE)
  if (length(values) != n) {
    stop("input file is truncated")
  }
  Encoding(values) <- "UTF-8"
  values[missing] <- NA_character_
  values
}

read_column <- function(con, nrow) {
  type <- read_int32(con)
  if (type == TYPE_LOGICAL) {
    return(as.logical(read_int32(con, nrow)))
  }
  if (type == TYPE_INTEGER) {
    return(read_int32(con, nrow))
  }
  if (type == TYPE_DOUBLE) {
    return(read_float64(con, nrow))
  }
  if (type == TYPE_CHARACTER) {
    return(read_strings(con, nrow))
  }
  if (type == TYPE_FACTOR) {
    ordered <- read_int32(con) == 1L
    nlevels <- read_int32(con)
    levels <- read_strings(con, nlevels)
    codes <- read_int32(con, nrow)
    class <- if (ordered) c("ordered", "factor") else "factor"
    return(structure(codes, levels = levels, class = class))
  }
  stop(sprintf("input file has a column with unknown type code %d", type))
}

read_exchange_input <- function(path) {
  con <- file(path, "rb")
  on.exit(close(con))
  read_exchange(con)
}

read_exchange <- function(con) {
  magic <- readBin(con, "raw", n = nchar(EXCHANGE_MAGIC))
  if (!identical(magic, charToRaw(EXCHANGE_MAGIC))) {
    stop(sprintf("input file is not an mlflowreg exchange file: it does not start with '%s'",
                 EXCHANGE_MAGIC))
  }
  version <- read_int32(con)
  if (version != EXCHANGE_VERSION) {
    stop(sprintf(paste0("input file uses exchange format version %d, but this script reads ",
                        "version %d. mlflowreg_pyfunc.py and mlflowreg_predict.R come from ",
                        "different mlflowreg releases, so save the model again"),
                 version, EXCHANGE_VERSION))
  }
  kind <- read_int32(con)
  if (kind != KIND_DATA_FRAME) {
    stop(sprintf("input file contains kind %d, but the model input must be a data frame (kind %d)",
                 kind, KIND_DATA_FRAME))
  }
  nrow <- read_int32(con)
  ncol <- read_int32(con)

  names <- character(ncol)
  columns <- vector("list", ncol)
  for (index in seq_len(ncol)) {
    names[[index]] <- read_strings(con, 1L)
    columns[[index]] <- read_column(con, nrow)
  }
  if (length(readBin(con, "raw", n = 1L)) != 0L) {
    stop("input file has bytes after the last column")
  }

  # structure() instead of data.frame() keeps names unchanged (no make.names)
  # and strings as character.
  structure(columns, names = names, class = "data.frame",
            row.names = .set_row_names(nrow))
}


# Writing the result

write_int32 <- function(con, values) {
  writeBin(as.integer(values), con, size = 4L, endian = "little")
}

write_strings <- function(con, values, column_name) {
  values <- enc2utf8(as.character(values))
  # iconv() returns the bytes of each string, and NULL for NA or invalid UTF-8.
  bytes <- iconv(values, from = "UTF-8", to = "UTF-8", toRaw = TRUE)
  missing <- is.na(values)
  invalid <- !missing & vapply(bytes, is.null, logical(1L))
  if (any(invalid)) {
    stop(sprintf("column '%s' has strings that are not valid UTF-8, for example at row %d",
                 column_name, which(invalid)[[1L]]))
  }
  lengths <- lengths(bytes)
  lengths[missing] <- -1L
  write_int32(con, lengths)
  writeBin(as.raw(unlist(bytes)), con)
}

write_column <- function(con, name, values, nrow) {
  write_strings(con, name, name)

  if (!is.null(dim(values))) {
    stop(sprintf(paste0("column '%s' is a matrix or array. Return its columns as ",
                        "separate data frame columns"), name))
  }
  if (length(values) != nrow) {
    stop(sprintf("column '%s' has %d values, but the result has %d rows",
                 name, length(values), nrow))
  }

  if (is.factor(values)) {
    levels <- levels(values)
    write_int32(con, TYPE_FACTOR)
    write_int32(con, if (is.ordered(values)) 1L else 0L)
    write_int32(con, length(levels))
    write_strings(con, levels, name)
    write_int32(con, unclass(values))
  } else if (is.object(values)) {
    # Classed vectors such as Date or POSIXct are numbers with a meaning that
    # pandas would not see, so they are rejected instead of sent as numbers.
    stop(sprintf(paste0("column '%s' has class '%s', which the exchange format does not ",
                        "support. Convert it to a factor, character, numeric or logical ",
                        "vector in the model"),
                 name, paste(class(values), collapse = "/")))
  } else if (is.logical(values)) {
    write_int32(con, TYPE_LOGICAL)
    write_int32(con, values)
  } else if (is.integer(values)) {
    write_int32(con, TYPE_INTEGER)
    write_int32(con, values)
  } else if (is.double(values)) {
    write_int32(con, TYPE_DOUBLE)
    writeBin(values, con, size = 8L, endian = "little")
  } else if (is.character(values)) {
    write_int32(con, TYPE_CHARACTER)
    write_strings(con, values, name)
  } else {
    stop(sprintf(paste0("column '%s' has R type '%s', which the exchange format does not ",
                        "support. Return logical, integer, double, character or factor values"),
                 name, typeof(values)))
  }
}

write_exchange_result <- function(path, result) {
  parts <- exchange_parts(result)
  con <- file(path, "wb")
  on.exit(close(con))
  write_exchange(con, parts$kind, parts$nrow, parts$names, parts$columns)
}

# Returns the result as raw bytes in the exchange format.
exchange_bytes <- function(result) {
  parts <- exchange_parts(result)
  con <- rawConnection(raw(0L), "wb")
  on.exit(close(con))
  write_exchange(con, parts$kind, parts$nrow, parts$names, parts$columns)
  rawConnectionValue(con)
}

exchange_parts <- function(result) {
  if (is.matrix(result)) {
    # Columns of an unnamed matrix are named V1, V2, ... as in as.data.frame().
    result <- as.data.frame(result, stringsAsFactors = FALSE)
  }

  if (is.data.frame(result)) {
    kind <- KIND_DATA_FRAME
    columns <- as.list(result)
    names <- names(result)
    nrow <- nrow(result)
  } else if (is.atomic(result) && !is.null(result) && is.null(dim(result))) {
    kind <- KIND_VECTOR
    columns <- list(result)
    names <- ""
    nrow <- length(result)
  } else {
    stop(sprintf(paste0("the model returned an object of class '%s'. Return an atomic ",
                        "vector, a matrix or a data frame"),
                 paste(class(result), collapse = "/")))
  }
  list(kind = kind, nrow = nrow, names = names, columns = columns)
}

write_exchange <- function(con, kind, nrow, names, columns) {
  writeBin(charToRaw(EXCHANGE_MAGIC), con)
  write_int32(con, EXCHANGE_VERSION)
  write_int32(con, kind)
  write_int32(con, nrow)
  write_int32(con, length(columns))
  for (index in seq_along(columns)) {
    write_column(con, names[[index]], columns[[index]], nrow)
  }
}


# Entry point

load_crate <- function(path) {
  model <- unserialize(readRDS(path))
  if (!is.function(model)) {
    stop(sprintf("the crate file '%s' contains an object of class '%s' instead of a function",
                 path, paste(class(model), collapse = "/")))
  }
  model
}

write_error <- function(path, step, condition) {
  text <- enc2utf8(c(step, conditionMessage(condition)))
  con <- file(path, "wb")
  on.exit(close(con))
  writeBin(charToRaw(paste0(paste(text, collapse = "\n"), "\n")), con)
}

# Worker mode

REQUEST_MAGIC <- "MLFLOWREGQ"

read_exact <- function(con, n) {
  bytes <- readBin(con, "raw", n = n)
  if (length(bytes) != n) {
    stop("request pipe closed in the middle of a request")
  }
  bytes
}

# Returns the next request as a list, or NULL when the pipe was closed.
read_request <- function(con) {
  magic <- readBin(con, "raw", n = nchar(REQUEST_MAGIC))
  if (length(magic) == 0L) {
    return(NULL)
  }
  if (!identical(magic, charToRaw(REQUEST_MAGIC))) {
    stop("request does not start with ", REQUEST_MAGIC)
  }
  dir_length <- readBin(con, "integer", n = 1L, size = 4L, endian = "little")
  work_dir <- rawToChar(read_exact(con, dir_length))
  Encoding(work_dir) <- "UTF-8"
  payload_length <- readBin(con, "double", n = 1L, size = 8L, endian = "little")
  list(work_dir = work_dir, payload = read_exact(con, payload_length))
}

write_response <- function(con, status, body) {
  write_int32(con, status)
  writeBin(as.double(length(body)), con, size = 8L, endian = "little")
  writeBin(body, con)
  flush(con)
}

# Runs one request and returns list(status, body).
serve_request <- function(request, crate_path, state) {
  Sys.setenv(TMPDIR = request$work_dir)
  # The caller deleted the previous work directory with R's temporary
  # directory in it; check = TRUE makes R create a new one below TMPDIR.
  invisible(tempdir(check = TRUE))
  output <- file(file.path(request$work_dir, "stdout.txt"), "w")
  messages <- file(file.path(request$work_dir, "stderr.txt"), "w")
  sink(output)
  sink(messages, type = "message")
  on.exit({
    sink(type = "message")
    sink()
    close(messages)
    close(output)
  })

  step <- "starting"
  tryCatch({
    step <- "loading the crate"
    if (is.null(state$model)) {
      state$model <- load_crate(crate_path)
    }
    step <- "reading the model input"
    input <- rawConnection(request$payload, "rb")
    data <- tryCatch(read_exchange(input), finally = close(input))
    step <- "calling the model"
    result <- do.call(state$model, list(data))
    step <- "writing the model result"
    list(status = 0L, body = exchange_bytes(result))
  }, error = function(condition) {
    text <- enc2utf8(paste0(step, "\n", conditionMessage(condition)))
    list(status = 1L, body = charToRaw(text))
  })
}

worker_main <- function(args) {
  if (length(args) != 3L) {
    message("usage: Rscript --vanilla mlflowreg_predict.R --worker <crate> <request fd> <response fd>")
    quit(save = "no", status = 2L)
  }
  # raw = TRUE: R reads and writes pipes as they are, without checking for
  # compression headers.
  requests <- file(sprintf("/dev/fd/%s", args[[2L]]), "rb", raw = TRUE)
  responses <- file(sprintf("/dev/fd/%s", args[[3L]]), "wb", raw = TRUE)
  state <- new.env()
  repeat {
    request <- read_request(requests)
    if (is.null(request)) {
      break
    }
    response <- serve_request(request, args[[1L]], state)
    write_response(responses, response$status, response$body)
  }
  quit(save = "no", status = 0L)
}

main <- function(args) {
  # Print warnings as they happen: quit() below ends the session before R's
  # deferred top-level warnings would be printed.
  options(warn = 1L)
  if (length(args) >= 1L && identical(args[[1L]], "--worker")) {
    worker_main(args[-1L])
  }
  if (length(args) != 4L) {
    message("usage: Rscript --vanilla mlflowreg_predict.R <crate> <input> <output> <error>")
    quit(save = "no", status = 2L)
  }
  crate_path <- args[[1L]]
  input_path <- args[[2L]]
  output_path <- args[[3L]]
  error_path <- args[[4L]]

  step <- "starting"
  succeeded <- tryCatch({
    step <- "loading the crate"
    model <- load_crate(crate_path)
    step <- "reading the model input"
    data <- read_exchange_input(input_path)
    step <- "calling the model"
    result <- do.call(model, list(data))
    step <- "writing the model result"
    write_exchange_result(output_path, result)
    TRUE
  }, error = function(condition) {
    write_error(error_path, step, condition)
    FALSE
  })
  quit(save = "no", status = if (succeeded) 0L else 1L)
}

main(commandArgs(trailingOnly = TRUE))
