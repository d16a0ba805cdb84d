library(testthat)
library(mlflowreg)

test_check("mlflowreg")
