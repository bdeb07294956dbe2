#include "train/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "core/did_you_mean.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "train/io/atomic_file.h"

namespace t6 {

// Tensor bytes are copied straight between memory and file, and the format is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the limit of the reference implementation
constexpr size_t kMaxListedProblems = 20;
constexpr int kMaxNesting = 8;  // a valid header nests 3 deep: header, entry, shape

// Every dtype of the format with a whole number of bytes per element.
const std::map<std::string, uint64_t>& dtype_sizes() {
  static const std::map<std::string, uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1},
      {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},     {"I32", 4},
      {"F32", 4},  {"U64", 8}, {"I64", 8}, {"F64", 8},     {"C64", 8}};
  return sizes;
}

std::vector<std::string> known_dtype_names() {
  std::vector<std::string> names;
  for (const auto& [name, size] : dtype_sizes()) names.push_back(name);
  return names;
}

// A JSON value as it appears in a message: one level deep and cut short, so that a hostile header
// can neither flood the message nor recurse deeply.
std::string excerpt(const json& value) {
  auto shallow = [](const json& v) {
    if (v.is_array()) return std::string("[...]");
    if (v.is_object()) return std::string("{...}");
    return v.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  std::string text;
  if (value.is_array()) {
    text = "[";
    for (size_t i = 0; i < value.size() && text.size() < 60; ++i) {
      if (i) text += ", ";
      text += shallow(value[i]);
    }
    text += "]";
  } else {
    text = shallow(value);
  }
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

}  // namespace

// The open file descriptor shared by copies of a SafetensorsFile.
struct SafetensorsFile::OpenFile {
  int fd = -1;
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads exactly `size` bytes at `offset`; false on an I/O error or end of file.
static bool read_exactly(int fd, uint64_t offset, void* buffer, uint64_t size) {
  auto* bytes = static_cast<char*>(buffer);
  while (size > 0) {
    ssize_t got = ::pread(fd, bytes, std::min<uint64_t>(size, 1u << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    bytes += got;
    offset += static_cast<uint64_t>(got);
    size -= static_cast<uint64_t>(got);
  }
  return true;
}

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

// Checks one tensor entry of the header. Appends a problem for each fault; returns true and fills
// `tensor` only when the entry is entirely valid.
static bool parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_size,
                               SafetensorsTensor& tensor, std::vector<std::string>& problems) {
  const std::string where = "tensor \"" + name + "\": ";
  if (!entry.is_object()) {
    problems.push_back(cat(where, "entry must be an object with dtype, shape and data_offsets, got ",
                           entry.type_name(), " ", excerpt(entry)));
    return false;
  }
  const size_t problems_before = problems.size();
  auto field = [&](const char* key) -> const json* {
    auto found = entry.find(key);
    if (found != entry.end()) return &*found;
    std::vector<std::string> present;
    for (const auto& item : entry.items())
      if (present.size() < 8) present.push_back(item.key());
    problems.push_back(cat(where, "missing \"", key, "\"",
                           present.empty() ? std::string() : " (fields present: " + join_quoted(present) + ")"));
    return nullptr;
  };

  uint64_t element_size = 0;
  if (const json* dtype = field("dtype")) {
    if (!dtype->is_string()) {
      problems.push_back(cat(where, "\"dtype\" must be a string, got ", excerpt(*dtype)));
    } else {
      tensor.dtype = dtype->get<std::string>();
      auto known = dtype_sizes().find(tensor.dtype);
      if (known != dtype_sizes().end()) {
        element_size = known->second;
      } else {
        problems.push_back(cat(where, "unknown dtype \"", tensor.dtype, "\"",
                               did_you_mean(tensor.dtype, known_dtype_names()),
                               "; known dtypes: ", join_quoted(known_dtype_names())));
      }
    }
  }

  // numel is computed over the non-zero dims so that even a shape with a zero dim cannot overflow
  // when a caller multiplies its dims.
  bool shape_valid = false;
  uint64_t numel = 1;
  bool has_zero_dim = false;
  if (const json* shape = field("shape")) {
    bool integers = shape->is_array() && std::all_of(shape->begin(), shape->end(), [](const json& dim) {
                      return dim.is_number_integer();
                    });
    if (!integers) {
      problems.push_back(cat(where, "\"shape\" must be an array of integers, got ", excerpt(*shape)));
    } else {
      shape_valid = true;
      for (const json& dim : *shape) {
        if (!dim.is_number_unsigned()) {
          problems.push_back(cat(where, "negative dimension ", dim.get<int64_t>(), " in shape ", excerpt(*shape)));
          shape_valid = false;
          continue;
        }
        uint64_t size = dim.get<uint64_t>();
        if (size == 0) {
          has_zero_dim = true;
        } else if (__builtin_mul_overflow(numel, size, &numel) || numel > uint64_t(INT64_MAX)) {
          problems.push_back(cat(where, "shape ", excerpt(*shape), " has more elements than fit in int64"));
          shape_valid = false;
          break;
        }
        tensor.shape.push_back(static_cast<int64_t>(size));
      }
      if (has_zero_dim) numel = 0;
    }
  }

  bool offsets_valid = false;
  if (const json* offsets = field("data_offsets")) {
    if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned()) {
      problems.push_back(cat(where, "\"data_offsets\" must be [begin, end] with non-negative integers, got ",
                             excerpt(*offsets)));
    } else {
      tensor.begin = (*offsets)[0].get<uint64_t>();
      tensor.end = (*offsets)[1].get<uint64_t>();
      if (tensor.begin > tensor.end) {
        problems.push_back(cat(where, "data_offsets [", tensor.begin, ", ", tensor.end, "] have begin > end"));
      } else if (tensor.end > data_size) {
        problems.push_back(cat(where, "data_offsets [", tensor.begin, ", ", tensor.end,
                               "] end beyond the data section, which has ", data_size,
                               " bytes: the file is truncated"));
      } else {
        offsets_valid = true;
      }
    }
  }

  if (element_size > 0 && shape_valid && offsets_valid) {
    uint64_t needed = 0;
    bool overflow = __builtin_mul_overflow(numel, element_size, &needed);
    if (overflow || needed != tensor.end - tensor.begin) {
      problems.push_back(cat(where, "shape ", shape_str(tensor.shape), " of ", tensor.dtype, " needs ",
                             overflow ? std::string("more than 2^64") : std::to_string(needed),
                             " bytes but data_offsets [", tensor.begin, ", ", tensor.end, "] span ",
                             tensor.end - tensor.begin));
    }
  }
  tensor.name = name;
  return problems.size() == problems_before;
}

// Two tensors may not share bytes. Empty tensors occupy no bytes and never overlap.
static void check_overlaps(std::vector<SafetensorsTensor> tensors, std::vector<std::string>& problems) {
  std::sort(tensors.begin(), tensors.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const SafetensorsTensor* furthest = nullptr;  // the tensor reaching furthest so far
  for (const SafetensorsTensor& tensor : tensors) {
    if (tensor.begin == tensor.end) continue;
    if (furthest && tensor.begin < furthest->end) {
      problems.push_back(cat("tensors \"", furthest->name, "\" and \"", tensor.name, "\" overlap: bytes [",
                             furthest->begin, ", ", furthest->end, ") and [", tensor.begin, ", ",
                             tensor.end, ")"));
    }
    if (!furthest || tensor.end > furthest->end) furthest = &tensor;
  }
}

// The reference reader also insists that the tensors fill the data section exactly: byte ranges that
// follow one another from 0 to its end. A gap or trailing bytes mean the header and data disagree
// (a header length off by one shifts every tensor), so the values read would be garbage.
static void check_coverage(std::vector<SafetensorsTensor> tensors, uint64_t data_size,
                           std::vector<std::string>& problems) {
  std::sort(tensors.begin(), tensors.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const SafetensorsTensor& tensor : tensors) {
    if (tensor.begin == tensor.end) continue;
    if (tensor.begin > covered) {
      problems.push_back(cat("bytes [", covered, ", ", tensor.begin, ") of the data section belong to no tensor (before \"",
                             tensor.name, "\"): the header length or the data offsets are wrong"));
    }
    covered = std::max(covered, tensor.end);
  }
  if (covered < data_size)
    problems.push_back(cat("the data section has ", data_size, " bytes but the tensors cover only ", covered,
                           ": the header length or the data offsets are wrong, or bytes were appended"));
}

static std::string problems_message(const std::string& path, const std::vector<std::string>& problems) {
  if (problems.size() == 1) return cat("safetensors file '", path, "' is invalid: ", problems[0]);
  std::string message = cat("safetensors file '", path, "' is invalid (", problems.size(), " problems):");
  for (size_t i = 0; i < problems.size() && i < kMaxListedProblems; ++i) message += "\n  - " + problems[i];
  if (problems.size() > kMaxListedProblems)
    message += cat("\n  - ... and ", problems.size() - kMaxListedProblems, " more");
  return message;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile result;
  result.path_ = path;
  auto file = std::make_shared<OpenFile>();
  file->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  T6_CHECK(file->fd >= 0, "cannot open safetensors file '", path, "': ", std::strerror(errno));
  result.file_ = file;
  auto invalid = [&](const std::string& problem) { return Error(problems_message(path, {problem})); };

  struct stat info {};
  T6_CHECK(::fstat(file->fd, &info) == 0, "cannot stat '", path, "': ", std::strerror(errno));
  if (!S_ISREG(info.st_mode)) throw invalid("not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);
  if (file_size < 8)
    throw invalid(cat("the file has ", file_size, " bytes, fewer than the 8-byte header length: truncated "
                      "or not a safetensors file"));

  unsigned char length_bytes[8];
  T6_CHECK(read_exactly(file->fd, 0, length_bytes, 8), "cannot read '", path, "': ", std::strerror(errno));
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | length_bytes[i];
  if (header_size > kMaxHeaderBytes)
    throw invalid(cat("header length ", header_size, " is absurd (the limit is ", kMaxHeaderBytes,
                      " bytes): not a safetensors file"));
  if (header_size > file_size - 8)
    throw invalid(cat("header length ", header_size, " is larger than the file (", file_size,
                      " bytes): truncated or not a safetensors file"));
  std::string header(header_size, '\0');
  T6_CHECK(read_exactly(file->fd, 8, header.data(), header_size), "cannot read the header of '", path, "': ",
           std::strerror(errno));
  result.data_start_ = 8 + header_size;
  const uint64_t data_size = file_size - result.data_start_;

  // While parsing: the parser keeps only one of two equal keys, so repeated tensor names are caught
  // here, and deep nesting is refused before it can cost memory.
  std::vector<std::string> problems;
  std::set<std::string> names_seen;
  auto watch = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!names_seen.insert(key).second) problems.push_back(cat("\"", key, "\" appears more than once in the header"));
    }
    bool starts_container = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
    if (starts_container && depth >= kMaxNesting)
      throw invalid(cat("the header nests JSON more than ", kMaxNesting, " levels deep"));
    return true;
  };
  json root;
  try {
    root = json::parse(header, watch);
  } catch (const json::exception& e) {
    throw invalid(cat("the header is not valid JSON (", e.what(), ")"));
  }
  if (!root.is_object()) throw invalid(cat("the header must be a JSON object, got ", root.type_name()));

  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) {
        problems.push_back(cat("\"__metadata__\" must be an object of strings, got ", excerpt(value)));
        continue;
      }
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (meta_value.is_string())
          result.metadata_[meta_key] = meta_value.get<std::string>();
        else
          problems.push_back(cat("__metadata__ key \"", meta_key, "\": value must be a string, got ",
                                 excerpt(meta_value)));
      }
      continue;
    }
    SafetensorsTensor tensor;
    if (parse_tensor_entry(key, value, data_size, tensor, problems)) result.tensors_.push_back(std::move(tensor));
  }
  check_overlaps(result.tensors_, problems);
  if (problems.empty()) check_coverage(result.tensors_, data_size, problems);
  if (!problems.empty()) throw Error(problems_message(path, problems));

  std::sort(result.tensors_.begin(), result.tensors_.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
            });
  return result;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const SafetensorsTensor& tensor : tensors_)
    if (tensor.name == name) return &tensor;
  return nullptr;
}

std::vector<float> SafetensorsFile::read_float32(const std::string& name) const {
  const SafetensorsTensor* tensor = find(name);
  std::vector<float> values(tensor ? static_cast<size_t>(tensor->numel()) : 0);
  read_float32(name, values.data());
  return values;
}

// Rounds to the nearest float; the explicit overflow keeps an out-of-range cast from being undefined.
static float double_to_float(double value) {
  if (std::isfinite(value) && std::fabs(value) > FLT_MAX) {
    // Halfway between FLT_MAX and 2^128 and above rounds to infinity (ties go to the even 2^128).
    float magnitude = std::fabs(value) >= 0x1.ffffffp127 ? INFINITY : FLT_MAX;
    return value > 0 ? magnitude : -magnitude;
  }
  return static_cast<float>(value);
}

void SafetensorsFile::read_float32(const std::string& name, float* out) const {
  const SafetensorsTensor* tensor = find(name);
  if (!tensor) {
    std::vector<std::string> names;
    for (const SafetensorsTensor& t : tensors_) names.push_back(t.name);
    throw Error(cat("safetensors file '", path_, "' has no tensor \"", name, "\"", did_you_mean(name, names)));
  }
  const bool convertible = tensor->dtype == "F32" || tensor->dtype == "F64" || tensor->dtype == "BF16";
  T6_CHECK(convertible, "safetensors file '", path_, "': tensor \"", name, "\" has dtype ", tensor->dtype,
           ", which cannot be read as float32 (readable dtypes: \"F32\", \"F64\", \"BF16\")");
  const uint64_t offset = data_start_ + tensor->begin;
  const uint64_t bytes = tensor->end - tensor->begin;
  auto read_failed = [&] {
    return Error(cat("cannot read tensor \"", name, "\" from '", path_, "': ",
                     errno ? std::strerror(errno) : "the file ended early"));
  };
  errno = 0;
  if (tensor->dtype == "F32") {
    if (!read_exactly(file_->fd, offset, out, bytes)) throw read_failed();
    return;
  }
  // F64 and BF16 are converted in chunks so that no second full-size buffer is needed.
  constexpr uint64_t kChunkBytes = 1 << 20;  // a multiple of both element sizes
  const uint64_t element_size = tensor->dtype == "F64" ? 8 : 2;
  std::vector<unsigned char> chunk(std::min(bytes, kChunkBytes));
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t size = std::min(bytes - done, kChunkBytes);
    if (!read_exactly(file_->fd, offset + done, chunk.data(), size)) throw read_failed();
    const uint64_t count = size / element_size;
    if (element_size == 8) {
      for (uint64_t i = 0; i < count; ++i) {
        double value;
        std::memcpy(&value, chunk.data() + 8 * i, 8);
        out[i] = double_to_float(value);
      }
    } else {
      for (uint64_t i = 0; i < count; ++i) {
        uint16_t value;
        std::memcpy(&value, chunk.data() + 2 * i, 2);
        out[i] = bf16_to_float(value);
      }
    }
    out += count;
    done += size;
  }
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteEntry>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // nlohmann::ordered_json keeps insertion order, so the header lists tensors in data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> numels;
  for (const SafetensorsWriteEntry& entry : tensors) {
    const std::string where = cat("write_safetensors '", path, "': tensor \"", entry.name, "\"");
    T6_CHECK(!entry.name.empty(), "write_safetensors '", path, "': a tensor has an empty name");
    T6_CHECK(entry.name != "__metadata__", where, ": the name is reserved for metadata");
    T6_CHECK(!header.contains(entry.name), where, " appears more than once");
    uint64_t numel = 1;
    for (int64_t dim : entry.shape) {
      T6_CHECK(dim >= 0, where, ": negative dimension in shape ", shape_str(entry.shape));
      T6_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel) && numel <= uint64_t(INT64_MAX) / 4,
               where, ": shape ", shape_str(entry.shape), " is too large");
    }
    T6_CHECK(entry.data || numel == 0, where, ": data is null");
    header[entry.name] = {{"dtype", "F32"}, {"shape", entry.shape}, {"data_offsets", {offset, offset + 4 * numel}}};
    offset += 4 * numel;
    numels.push_back(numel);
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    throw Error(cat("write_safetensors '", path, "': a tensor name or metadata text is not valid UTF-8 (",
                    e.what(), ")"));
  }
  // Spaces after the JSON make the data section start at a multiple of 8 bytes.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_size = header_text.size();

  write_file_atomically(path, [&](std::FILE* file) {
    unsigned char length_bytes[8];
    for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(header_size >> (8 * i));
    std::fwrite(length_bytes, 1, 8, file);
    std::fwrite(header_text.data(), 1, header_text.size(), file);
    for (size_t i = 0; i < tensors.size(); ++i)
      if (numels[i] > 0) std::fwrite(tensors[i].data, sizeof(float), numels[i], file);
  });
}

}  // namespace t6
