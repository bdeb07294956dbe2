#include <doctest/doctest.h>
#include <unistd.h>

#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "core/error.h"
#include "train/io/safetensors.h"

using namespace t6;
namespace fs = std::filesystem;

namespace {

// A path in the system temp dir, unique to this process and test, removed at scope exit.
struct TempPath {
  std::string path;
  explicit TempPath(const std::string& name)
      : path((fs::temp_directory_path() / ("t6_safetensors_" + std::to_string(::getpid()) + "_" + name)).string()) {}
  ~TempPath() { fs::remove_all(path); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// A file built by hand: length prefix, the header text as given, then the data bytes.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// The message of the t6::Error that opening `bytes` as a safetensors file throws ("" if none).
std::string open_error(const std::string& bytes) {
  TempPath file("corrupt.safetensors");
  write_bytes(file.path, bytes);
  try {
    SafetensorsFile::open(file.path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& phrase) { return text.find(phrase) != std::string::npos; }

}  // namespace

TEST_CASE("safetensors round trip is bit-exact, including -0, infinities, denormals and NaN") {
  TempPath file("roundtrip.safetensors");
  std::vector<float> special = {0.0f, -0.0f, INFINITY, -INFINITY, FLT_TRUE_MIN, -FLT_TRUE_MIN,
                                1e-40f, FLT_MIN, FLT_MAX, -FLT_MAX, std::nanf(""), float_from_bits(0x7fc00001u),
                                1.0f / 3.0f, -123456.789f, 1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> matrix = {1, 2, 3, 4, 5, 6};
  float scalar = 0.5f;
  write_safetensors(file.path, {{"special", {3, 6}, special.data()},
                                {"matrix", {2, 3}, matrix.data()},
                                {"scalar", {}, &scalar},
                                {"empty", {0, 4}, nullptr}});

  SafetensorsFile loaded = SafetensorsFile::open(file.path);
  REQUIRE(loaded.tensors().size() == 4);
  // Tensors come back in file order, which is the order they were written in.
  CHECK(loaded.tensors()[0].name == "special");
  CHECK(loaded.tensors()[1].name == "matrix");
  CHECK(loaded.tensors()[2].name == "scalar");
  CHECK(loaded.tensors()[3].name == "empty");

  const SafetensorsTensor* info = loaded.find("special");
  REQUIRE(info != nullptr);
  CHECK(info->dtype == "F32");
  CHECK(info->shape == std::vector<int64_t>{3, 6});
  CHECK(info->numel() == 18);
  CHECK(info->begin == 0);
  CHECK(info->end == 72);
  CHECK(loaded.find("matrix")->begin == 72);
  CHECK(loaded.find("scalar")->shape.empty());
  CHECK(loaded.find("scalar")->numel() == 1);
  CHECK(loaded.find("empty")->numel() == 0);
  CHECK(loaded.find("absent") == nullptr);
  CHECK(loaded.metadata().empty());

  std::vector<float> read = loaded.read_float32("special");
  REQUIRE(read.size() == special.size());
  for (size_t i = 0; i < special.size(); ++i) CHECK(bits_of(read[i]) == bits_of(special[i]));
  CHECK(loaded.read_float32("matrix") == matrix);
  CHECK(loaded.read_float32("scalar") == std::vector<float>{0.5f});
  CHECK(loaded.read_float32("empty").empty());

  std::vector<float> into(6, -1.0f);
  loaded.read_float32("matrix", into.data());
  CHECK(into == matrix);
}

TEST_CASE("safetensors metadata round trip, with quotes, newlines and non-ASCII text") {
  TempPath file("metadata.safetensors");
  std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"config", "{\"n_layer\": 2,\n \"n_head\": 4}"}, {"empty", ""}, {"name", "modèle τ6"}};
  std::vector<float> w = {1.0f, 2.0f};
  write_safetensors(file.path, {{"w", {2}, w.data()}}, metadata);
  SafetensorsFile loaded = SafetensorsFile::open(file.path);
  CHECK(loaded.metadata() == metadata);
  CHECK(loaded.read_float32("w") == w);
}

TEST_CASE("safetensors writer produces exactly the bytes of the format") {
  TempPath file("layout.safetensors");
  std::vector<float> w = {1.0f, -2.0f};
  write_safetensors(file.path, {{"w", {2}, w.data()}}, {{"format", "pt"}});
  std::string header = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - (8 + header.size()) % 8) % 8, ' ');
  CHECK(read_bytes(file.path) == safetensors_bytes(header, raw_bytes(w)));
}

TEST_CASE("safetensors writer pads the header with spaces so the data starts 8-byte aligned") {
  TempPath file("aligned.safetensors");
  float value = 7.0f;
  for (size_t length = 1; length <= 16; ++length) {
    write_safetensors(file.path, {{std::string(length, 'x'), {1}, &value}});
    std::string bytes = read_bytes(file.path);
    uint64_t header_size = 0;
    std::memcpy(&header_size, bytes.data(), 8);
    CHECK((8 + header_size) % 8 == 0);
    CHECK(bytes.size() == 8 + header_size + 4);
    std::string header = bytes.substr(8, header_size);
    size_t json_end = header.rfind('}') + 1;
    CHECK(header.size() - json_end < 8);
    CHECK(header.find_first_not_of(' ', json_end) == std::string::npos);
    CHECK(SafetensorsFile::open(file.path).read_float32(std::string(length, 'x')) == std::vector<float>{7.0f});
  }
}

TEST_CASE("safetensors reads F64 and BF16 files written by hand, converting to float32") {
  TempPath file("converted.safetensors");
  std::vector<double> doubles = {1.5, -2.25, 0.1, 1e300, -1e300, 1e-50, 3.4028235e38, 3.40282357e38, -0.0,
                                 std::numeric_limits<double>::quiet_NaN()};
  std::vector<uint16_t> halves = {0x3f80, 0xc000, 0x7f80, 0xff80, 0x0001, 0x3eab, 0x8000, 0x7fc0};
  std::string header = R"({"d":{"dtype":"F64","shape":[2,5],"data_offsets":[0,80]},)"
                       R"("h":{"dtype":"BF16","shape":[8],"data_offsets":[80,96]}})";
  write_bytes(file.path, safetensors_bytes(header, raw_bytes(doubles) + raw_bytes(halves)));

  SafetensorsFile loaded = SafetensorsFile::open(file.path);
  CHECK(loaded.find("d")->dtype == "F64");
  CHECK(loaded.find("h")->dtype == "BF16");
  std::vector<float> d = loaded.read_float32("d");
  REQUIRE(d.size() == 10);
  CHECK(d[0] == 1.5f);
  CHECK(d[1] == -2.25f);
  CHECK(d[2] == 0.1f);  // rounded to the nearest float
  CHECK(d[3] == INFINITY);
  CHECK(d[4] == -INFINITY);
  CHECK(bits_of(d[5]) == 0u);
  CHECK(d[6] == FLT_MAX);  // rounds down to the largest float
  CHECK(d[7] == INFINITY);  // past the halfway point to 2^128
  CHECK(bits_of(d[8]) == 0x80000000u);
  CHECK(std::isnan(d[9]));

  std::vector<float> h = loaded.read_float32("h");
  REQUIRE(h.size() == 8);
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.0f);
  CHECK(h[2] == INFINITY);
  CHECK(h[3] == -INFINITY);
  CHECK(bits_of(h[4]) == 0x00010000u);  // a bfloat16 denormal widens exactly
  CHECK(bits_of(h[5]) == 0x3eab0000u);
  CHECK(bits_of(h[6]) == 0x80000000u);
  CHECK(std::isnan(h[7]));
}

TEST_CASE("safetensors F64 and BF16 tensors larger than one read chunk convert every element") {
  TempPath file("large.safetensors");
  const size_t n = 300000;  // 2.4 MB of F64: three chunks
  std::vector<double> doubles(n);
  std::vector<uint16_t> halves(n);
  for (size_t i = 0; i < n; ++i) {
    doubles[i] = static_cast<double>(i) * 0.5;
    halves[i] = static_cast<uint16_t>(i);
  }
  std::string d_bytes = std::to_string(8 * n), h_end = std::to_string(10 * n);
  std::string header = R"({"d":{"dtype":"F64","shape":[)" + std::to_string(n) + R"(],"data_offsets":[0,)" + d_bytes +
                       R"(]},"h":{"dtype":"BF16","shape":[)" + std::to_string(n) + R"(],"data_offsets":[)" + d_bytes +
                       "," + h_end + "]}}";
  write_bytes(file.path, safetensors_bytes(header, raw_bytes(doubles) + raw_bytes(halves)));
  SafetensorsFile loaded = SafetensorsFile::open(file.path);
  std::vector<float> d = loaded.read_float32("d");
  std::vector<float> h = loaded.read_float32("h");
  size_t d_mismatches = 0, h_mismatches = 0;
  for (size_t i = 0; i < n; ++i) {
    d_mismatches += d[i] != static_cast<float>(doubles[i]);
    h_mismatches += bits_of(h[i]) != (static_cast<uint32_t>(halves[i]) << 16);
  }
  CHECK(d_mismatches == 0);
  CHECK(h_mismatches == 0);
}

TEST_CASE("safetensors opens files with other dtypes but refuses to read them as float32") {
  TempPath file("int.safetensors");
  std::vector<int64_t> ids = {1, 2, 3};
  std::vector<float> w = {4.0f};
  std::string header = R"({"ids":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
                       R"("w":{"dtype":"F32","shape":[1],"data_offsets":[24,28]}})";
  write_bytes(file.path, safetensors_bytes(header, raw_bytes(ids) + raw_bytes(w)));
  SafetensorsFile loaded = SafetensorsFile::open(file.path);
  CHECK(loaded.find("ids")->dtype == "I64");
  CHECK(loaded.read_float32("w") == w);
  CHECK_THROWS_WITH_AS(loaded.read_float32("ids"), doctest::Contains("has dtype I64, which cannot be read as float32"),
                       Error);
  CHECK_THROWS_WITH_AS(loaded.read_float32("W"), doctest::Contains("has no tensor \"W\" (did you mean \"w\"?)"),
                       Error);
}

TEST_CASE("safetensors accepts tensors stored out of order; like the reference reader, it refuses gaps and trailing bytes") {
  TempPath file("order.safetensors");
  std::vector<float> data = {1, 2, 4, 5};  // b at [0, 8), a at [8, 16), the empty z between
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}   )";
  write_bytes(file.path, safetensors_bytes(header, raw_bytes(data)));
  SafetensorsFile loaded = SafetensorsFile::open(file.path);
  REQUIRE(loaded.tensors().size() == 3);
  CHECK(loaded.tensors()[0].name == "b");
  CHECK(loaded.tensors()[1].name == "z");
  CHECK(loaded.tensors()[2].name == "a");
  CHECK(loaded.read_float32("a") == std::vector<float>{4, 5});
  CHECK(loaded.read_float32("b") == std::vector<float>{1, 2});

  // A gap: 4 bytes between b and a belong to no tensor (a header and data that disagree).
  std::vector<float> gapped = {1, 2, 3, 4, 5};
  write_bytes(file.path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},)"
                                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                           raw_bytes(gapped)));
  CHECK_THROWS_WITH_AS(SafetensorsFile::open(file.path),
                       doctest::Contains("bytes [8, 12) of the data section belong to no tensor (before \"a\")"), Error);
  // Trailing bytes after the last tensor.
  write_bytes(file.path, safetensors_bytes(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                           raw_bytes(data)));
  CHECK_THROWS_WITH_AS(SafetensorsFile::open(file.path),
                       doctest::Contains("the data section has 16 bytes but the tensors cover only 8"), Error);
}

TEST_CASE("safetensors reads the file it validated even if the path is replaced meanwhile") {
  TempPath file("replaced.safetensors");
  std::vector<float> first = {1, 2}, second = {3, 4};
  write_safetensors(file.path, {{"w", {2}, first.data()}});
  SafetensorsFile loaded = SafetensorsFile::open(file.path);
  write_safetensors(file.path, {{"w", {2}, second.data()}});
  CHECK(loaded.read_float32("w") == first);
  SafetensorsFile copy = loaded;
  CHECK(copy.read_float32("w") == first);
  CHECK(SafetensorsFile::open(file.path).read_float32("w") == second);
}

TEST_CASE("safetensors reports each kind of corruption with a message naming it") {
  const std::string data(24, '\0');
  auto with_header = [&](const std::string& header) { return open_error(safetensors_bytes(header, data)); };
  auto entry = [](const std::string& fields) { return R"({"w":{)" + fields + "}}"; };

  CHECK(contains(open_error("abc"), "the file has 3 bytes, fewer than the 8-byte header length"));
  CHECK(contains(open_error(u64_le(100) + "{}"), "header length 100 is larger than the file (10 bytes)"));
  CHECK(contains(open_error(u64_le(uint64_t(1) << 40) + "{}"), "header length 1099511627776 is absurd"));
  CHECK(contains(with_header("{\"w\": "), "the header is not valid JSON"));
  CHECK(contains(with_header("{} trailing"), "the header is not valid JSON"));
  CHECK(contains(with_header("[1, 2]"), "the header must be a JSON object, got array"));
  CHECK(contains(with_header(R"({"w": 3})"), "tensor \"w\": entry must be an object"));
  CHECK(contains(with_header(entry(R"("shape":[6],"data_offsets":[0,24])")), "tensor \"w\": missing \"dtype\""));
  CHECK(contains(with_header(entry(R"("dtype":"F32","data_offsets":[0,24])")), "tensor \"w\": missing \"shape\""));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[6],"data_offset":[0,24])")),
                 "tensor \"w\": missing \"data_offsets\" (fields present: \"data_offset\", \"dtype\", \"shape\")"));
  CHECK(contains(with_header(entry(R"("dtype":32,"shape":[6],"data_offsets":[0,24])")),
                 "tensor \"w\": \"dtype\" must be a string, got 32"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":"6","data_offsets":[0,24])")),
                 "tensor \"w\": \"shape\" must be an array of integers, got \"6\""));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[2.5],"data_offsets":[0,24])")),
                 "\"shape\" must be an array of integers, got [2.5]"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[6],"data_offsets":[0])")),
                 "tensor \"w\": \"data_offsets\" must be [begin, end] with non-negative integers, got [0]"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[6],"data_offsets":[-4,24])")),
                 "\"data_offsets\" must be [begin, end]"));
  CHECK(contains(with_header(entry(R"("dtype":"F33","shape":[6],"data_offsets":[0,24])")),
                 "tensor \"w\": unknown dtype \"F33\" (did you mean \"F32\"?)"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[-2,3],"data_offsets":[0,24])")),
                 "tensor \"w\": negative dimension -2 in shape [-2, 3]"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[0],"data_offsets":[8,4])")),
                 "tensor \"w\": data_offsets [8, 4] have begin > end"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[8],"data_offsets":[0,32])")),
                 "tensor \"w\": data_offsets [0, 32] end beyond the data section, which has 24 bytes: "
                 "the file is truncated"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[2,3],"data_offsets":[0,20])")),
                 "tensor \"w\": shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] span 20"));
  CHECK(contains(with_header(entry(R"("dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0])")),
                 "has more elements than fit in int64"));
  CHECK(contains(with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})"),
                 "tensors \"a\" and \"b\" overlap: bytes [0, 16) and [12, 20)"));
  CHECK(contains(with_header(R"({"__metadata__":{"format":"pt","step":100}})"),
                 "__metadata__ key \"step\": value must be a string, got 100"));
  CHECK(contains(with_header(R"({"__metadata__":["pt"]})"), "\"__metadata__\" must be an object of strings"));
  CHECK(contains(with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
                 "\"w\" appears more than once in the header"));
  CHECK(contains(with_header(R"({"w":)" + std::string(100, '[') + std::string(100, ']') + "}"),
                 "the header nests JSON more than 8 levels deep"));
}

TEST_CASE("safetensors lists every problem of a file in one error") {
  std::string header = R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]},)"
                       R"("__metadata__":{"step":1}})";
  std::string message = open_error(safetensors_bytes(header, std::string(8, '\0')));
  CHECK(contains(message, "is invalid (3 problems):"));
  CHECK(contains(message, "\n  - tensor \"a\": unknown dtype \"F33\""));
  CHECK(contains(message, "\n  - tensor \"b\": negative dimension -1"));
  CHECK(contains(message, "\n  - __metadata__ key \"step\""));

  std::string many = "{";
  for (int i = 0; i < 30; ++i) {
    if (i) many += ',';
    many += "\"t" + std::to_string(i) + "\":1";
  }
  CHECK(contains(open_error(safetensors_bytes(many + "}", "")), "\n  - ... and 10 more"));
}

TEST_CASE("safetensors open reports a missing file and a directory") {
  TempPath dir("a_directory");
  fs::create_directory(dir.path);
  CHECK_THROWS_WITH_AS(SafetensorsFile::open(dir.path), doctest::Contains("not a regular file"), Error);
  CHECK_THROWS_WITH_AS(SafetensorsFile::open(dir.path + "/missing.safetensors"),
                       doctest::Contains("cannot open safetensors file"), Error);
}

TEST_CASE("write_safetensors refuses bad entries and leaves no file") {
  TempPath file("refused.safetensors");
  float value = 1.0f;
  CHECK_THROWS_WITH_AS(write_safetensors(file.path, {{"w", {1}, &value}, {"w", {1}, &value}}),
                       doctest::Contains("tensor \"w\" appears more than once"), Error);
  CHECK_THROWS_WITH_AS(write_safetensors(file.path, {{"__metadata__", {1}, &value}}),
                       doctest::Contains("reserved"), Error);
  CHECK_THROWS_WITH_AS(write_safetensors(file.path, {{"", {1}, &value}}), doctest::Contains("empty name"), Error);
  CHECK_THROWS_WITH_AS(write_safetensors(file.path, {{"w", {2, -1}, &value}}),
                       doctest::Contains("negative dimension in shape [2, -1]"), Error);
  CHECK_THROWS_WITH_AS(write_safetensors(file.path, {{"w", {3}, nullptr}}), doctest::Contains("data is null"),
                       Error);
  CHECK_THROWS_WITH_AS(write_safetensors(file.path, {{"w\xff", {1}, &value}}), doctest::Contains("not valid UTF-8"),
                       Error);
  CHECK(!fs::exists(file.path));
}

TEST_CASE("safetensors open never crashes on mutated or truncated files") {
  TempPath valid("fuzz_valid.safetensors"), mutated("fuzz_mutated.safetensors");
  std::vector<float> a(12, 1.5f), b(5, -2.0f);
  write_safetensors(valid.path, {{"a", {3, 4}, a.data()}, {"b", {5}, b.data()}}, {{"format", "pt"}});
  const std::string original = read_bytes(valid.path);
  uint64_t header_end = 0;
  std::memcpy(&header_end, original.data(), 8);
  header_end += 8;

  std::mt19937 rng(1234);
  auto below = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::string punctuation = "{}[]\",:-.e \\";
  std::vector<size_t> digit_positions;  // editing these keeps the JSON valid but changes shapes and offsets
  for (size_t i = 8; i < header_end; ++i)
    if (std::isdigit(static_cast<unsigned char>(original[i]))) digit_positions.push_back(i);
  int opened = 0, rejected = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string bytes = original;
    switch (iteration % 5) {
      case 0:  // truncate anywhere
        bytes.resize(below(bytes.size() + 1));
        break;
      case 1:  // overwrite random bytes, mostly in the header where the structure is
        for (size_t k = 0, edits = 1 + below(4); k < edits; ++k)
          bytes[below(header_end + 8) % bytes.size()] = static_cast<char>(rng());
        break;
      case 2:  // overwrite header bytes with JSON punctuation
        for (size_t k = 0, edits = 1 + below(3); k < edits; ++k)
          bytes[8 + below(header_end - 8)] = punctuation[below(punctuation.size())];
        break;
      case 3:  // change digits of shapes and offsets
        for (size_t k = 0, edits = 1 + below(2); k < edits; ++k)
          bytes[digit_positions[below(digit_positions.size())]] = static_cast<char>('0' + below(10));
        break;
      case 4:  // a random length prefix
        for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(i < 2 || below(4) == 0 ? rng() : 0);
        break;
    }
    write_bytes(mutated.path, bytes);
    try {
      SafetensorsFile file = SafetensorsFile::open(mutated.path);
      ++opened;
      for (const SafetensorsTensor& tensor : file.tensors()) {
        try {
          std::vector<float> values = file.read_float32(tensor.name);
          CHECK(values.size() == static_cast<size_t>(tensor.numel()));
        } catch (const Error&) {  // a dtype that is not convertible
        }
      }
    } catch (const Error&) {
      ++rejected;
    }
  }
  CHECK(opened + rejected == 3000);
  CHECK(opened > 0);
  CHECK(rejected > 0);
}
