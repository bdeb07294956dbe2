// Reading and writing the safetensors format (github.com/huggingface/safetensors), the checkpoint format
// shared with PyTorch. A file is:
//   8 bytes  N, a little-endian uint64: the length of the header
//   N bytes  a JSON object, padded at the end with spaces:
//              {"__metadata__": {"key": "value", ...},                      (optional; string values only)
//               "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   the rest the data section: each tensor's elements, row-major and little-endian, at bytes
//            [begin, end) counted from the first byte after the header.
// This reader accepts every dtype of the format in the header and converts F32, F64 and BF16 to
// float32; it tolerates unused bytes between or after tensors. The writer writes F32 only, packed
// in the given order, with the data section 8-byte aligned.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace t6 {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;            // as spelled in the file: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;   // [] for a scalar; the product of the dims always fits in int64
  uint64_t begin = 0, end = 0;  // byte range [begin, end) within the data section
  int64_t numel() const;
};

// An open, fully validated safetensors file. Tensor data is read on request, from the same open file
// that was validated, so replacing the file on disk meanwhile (as a checkpoint save does) cannot mix
// two versions. Copies share the open file; reads may run concurrently.
class SafetensorsFile {
 public:
  // Reads and checks the header. Every problem found is collected and reported in one t6::Error,
  // each naming the tensor or key at fault: a bad length prefix, JSON that is not an object, entries
  // with missing or mistyped fields, unknown dtypes, negative dims, byte ranges that are reversed,
  // past the end of the file, of the wrong size for their shape, or overlapping, and non-string
  // metadata. No byte sequence makes it read out of bounds or crash.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // by position in the file
  const SafetensorsTensor* find(const std::string& name) const;              // nullptr when absent

  // The tensor's elements as float32: F32 is copied bit for bit, F64 is rounded to nearest (beyond
  // the float range it becomes ±inf), BF16 is widened exactly. Other dtypes and unknown names throw,
  // the latter with the closest existing name as a suggestion.
  std::vector<float> read_float32(const std::string& name) const;
  void read_float32(const std::string& name, float* out) const;  // out holds numel() floats

 private:
  struct OpenFile;
  std::string path_;
  std::shared_ptr<const OpenFile> file_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct SafetensorsWriteEntry {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) contiguous floats; read during the call only
};

// Writes the tensors as F32, in the given order, with their data 8-byte aligned, atomically (see
// train/atomic_file.h): a failure or crash leaves any previous file at `path` as it was. Throws
// t6::Error for an empty, duplicate or reserved ("__metadata__") name, a negative dim, a missing data
// pointer, or text that is not valid UTF-8.
void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace t6
