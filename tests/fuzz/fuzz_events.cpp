// libFuzzer target for one event decoder (chosen at compile time by EVFORMER_FUZZ_FORMAT): the
// input bytes are decoded to the end with the format forced; evformer::Error is an expected
// outcome, anything else (crash, sanitizer report, other exception, hang) is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "evformer/error.hpp"
#include "evformer/io/events.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    evformer::io::ReaderOptions options;
    options.format = EVFORMER_FUZZ_FORMAT;
    try {
        auto reader = evformer::io::open_event_bytes(std::span(data, size), options);
        evformer::io::EventChunk chunk(evformer::io::EventChunk::min_capacity);
        while (reader->read(chunk) > 0) {
        }
    } catch (const evformer::Error&) {
    }
    return 0;
}
