# R side of the mlflowreg python_function flavor.
#
# Usage: Rscript --vanilla mlflowreg_predict.R <crate> <input> <output> <error>
#
# Loads the R function from <crate> (written by saveRDS(serialize(fn, NULL))),
# reads a data frame from <input>, calls the function on it as R mlflow does
# (do.call(fn, list(data))) and writes the result to <output>. mlflowreg_pyfunc.py
# starts this script and must use the same exchange format. On any error the
# script writes the failed step on the first line of <error>, R's condition
# message on the following lines, and exits with status 1. It needs only base R
# and whatever packages the crate itself uses.
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

  con <- file(path, "wb")
  on.exit(close(con))
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

main <- function(args) {
  # Print warnings as they happen: quit() below ends the session before R's
  # deferred top-level warnings would be printed.
  options(warn = 1L)
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
