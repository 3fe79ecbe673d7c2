// libFuzzer target for GGUF inspection: any bytes must yield a ModelInfo or a switchyard::Error,
// never a crash, abort, hang or other exception. Run it with bench/fuzz-gguf.sh.
#include "model/model_info.h"
#include "support/error.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t * data, std::size_t size) {
    try {
        switchyard::model::inspect_gguf_bytes(data, size, "fuzz.gguf");
    } catch (const switchyard::Error &) {
        // The expected outcome for broken input.
    }
    return 0;
}
