#' @useDynLib mlflowreg, .registration = TRUE
NULL
