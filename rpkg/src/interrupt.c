// Detects a pending user interrupt (Ctrl-C) without letting R long-jump
// through Rust frames. R_CheckUserInterrupt() jumps to the nearest top-level
// context when an interrupt is pending; R_ToplevelExec() makes that context
// here, in C, and reports the jump by returning FALSE. The interrupt is
// consumed, so the caller must signal it again in R.
#include <Rinternals.h>
#include <R_ext/Utils.h>

static void check_interrupt(void *data) {
    (void) data;
    R_CheckUserInterrupt();
}

// Returns 1 when the user pressed Ctrl-C since the last check. Call only
// from R's main thread.
int mlflowreg_interrupt_pending(void) {
    return R_ToplevelExec(check_interrupt, NULL) ? 0 : 1;
}
