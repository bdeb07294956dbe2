// Fuzz target: the safetensors reader, and reading every tensor it accepts.
#include "fuzz_target.h"
#include "train/io/safetensors.h"

namespace t6::fuzz {

int safetensors(const uint8_t* data, size_t size) {
  const std::string path = input_file("model.safetensors", {reinterpret_cast<const char*>(data), size});
  return refuse_or_accept([&] {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const SafetensorsTensor& t : file.tensors())
      if (t.dtype == "F32" || t.dtype == "F64" || t.dtype == "BF16") (void)file.read_float32(t.name);
  });
}

}  // namespace t6::fuzz

T6_FUZZ_TARGET(safetensors)
