// SwiftPM on Linux links every executable target with `--defsym main=<module>_main` (so that tests can import
// executables), which hides the `main` that libFuzzer's runtime provides. These `<module>_main` functions hand
// control to libFuzzer's driver instead, so the built binaries behave exactly like any libFuzzer binary
// (`fuzz-json CORPUS -max_total_time=60`, `fuzz-json crash-file`, `-minimize_crash=1`, ...). Where SwiftPM does
// not rename `main`, libFuzzer's own `main` is used and these are simply unused.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(int argc, char **argv) { return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput); }

int fuzz_request_main(int argc, char **argv) { return run(argc, argv); }
int fuzz_config_main(int argc, char **argv) { return run(argc, argv); }
int fuzz_json_main(int argc, char **argv) { return run(argc, argv); }
int fuzz_render_main(int argc, char **argv) { return run(argc, argv); }
