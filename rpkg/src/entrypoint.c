// Hands R's routine registration to the Rust library (extendr_module!).
void R_init_mlflowreg_extendr(void *dll);

void R_init_mlflowreg(void *dll) {
    R_init_mlflowreg_extendr(dll);
}
