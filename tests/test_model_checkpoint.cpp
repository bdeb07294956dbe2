// Models as safetensors files (train/model_checkpoint.h): the bit-exact round trip, files without a
// stored config, the tied matrix under either name, every mismatch reported in one error, a failed load
// leaving the model untouched, and a save killed midway leaving the previous file loadable.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/node.h"
#include "core/random.h"
#include "data_test_support.h"
#include "train/model_checkpoint.h"

using t6::testing::error_message;
using t6::testing::TempDir;

namespace {

t6::ModelConfig tiny_config(uint64_t init_seed = 1) {
  t6::ModelConfig c;
  c.vocab_size = 64;
  c.n_layer = 2;
  c.n_embd = 16;
  c.n_head = 2;
  c.head_dim = 8;
  c.q_rank = 2;
  c.rank = 2;
  c.block_size = 16;
  c.init_seed = init_seed;
  return c;
}

// Every parameter random in (−1, 1), so that no parameter (not even the zero-initialised projections)
// could pass a comparison by accident.
void randomize(t6::T6Model& model, uint64_t seed) {
  t6::Generator gen(seed);
  model.fill_uniform(gen, 1.0);
}

using Snapshot = std::vector<std::pair<std::string, std::vector<float>>>;

Snapshot snapshot(const t6::T6Model& model) {
  Snapshot s;
  for (const auto& [name, p] : model.named_parameters()) s.emplace_back(name, p.to_vector<float>());
  return s;
}

// Bit-for-bit equality of two snapshots (memcmp also tells -0 from 0 and compares NaN payloads).
bool same_bits(const Snapshot& a, const Snapshot& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || a[i].second.size() != b[i].second.size()) return false;
    if (std::memcmp(a[i].second.data(), b[i].second.data(), a[i].second.size() * sizeof(float)) != 0) return false;
  }
  return true;
}

// The model's parameters as write_safetensors entries (pointing into `values`, which must outlive them).
std::vector<t6::SafetensorsWriteEntry> entries_of(const t6::T6Model& model, const Snapshot& values) {
  std::vector<t6::SafetensorsWriteEntry> entries;
  const auto params = model.named_parameters();
  for (size_t i = 0; i < params.size(); ++i)
    entries.push_back({values[i].first, params[i].second.shape(), values[i].second.data()});
  return entries;
}

// A safetensors file built by hand, for dtypes the writer does not produce.
struct RawTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::string raw_safetensors(const std::vector<RawTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const RawTensor& t : tensors) {
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return file + text + data;
}

template <class T>
std::string bytes_of(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const std::string kWte = "transformer.wte.weight";

}  // namespace

TEST_CASE("model checkpoint: save then load is bit-exact, with the config and tokenizer in the metadata") {
  TempDir dir;
  t6::T6Model original(tiny_config(1));
  randomize(original, 7);
  const std::string path = dir / "model.safetensors";
  t6::save_model(original, path, "byte");

  const t6::SafetensorsFile file = t6::SafetensorsFile::open(path);
  CHECK(t6::checkpoint_tokenizer(file) == "byte");
  CHECK(file.metadata().at("format") == "pt");
  CHECK(nlohmann::json::parse(file.metadata().at("t6_model_config")) == original.config.to_json());
  REQUIRE(file.tensors().size() == original.named_parameters().size());  // the tied matrix once
  for (const auto& [name, p] : original.named_parameters()) {
    REQUIRE(file.find(name) != nullptr);
    CHECK(file.find(name)->dtype == "F32");
    CHECK(file.find(name)->shape == p.shape());
  }
  CHECK(file.find("lm_head.weight") == nullptr);

  const std::unique_ptr<t6::T6Model> loaded = t6::load_model(path);
  CHECK(loaded->config.to_json() == original.config.to_json());
  CHECK(same_bits(snapshot(*loaded), snapshot(original)));

  // Into an existing model initialised differently: every parameter is replaced.
  t6::T6Model other(tiny_config(2));
  CHECK_FALSE(same_bits(snapshot(other), snapshot(original)));
  t6::load_model_weights(other, file);
  CHECK(same_bits(snapshot(other), snapshot(original)));

  const std::string without_tokenizer = dir / "plain.safetensors";
  t6::save_model(original, without_tokenizer);
  CHECK(t6::checkpoint_tokenizer(t6::SafetensorsFile::open(without_tokenizer)) == "");
}

TEST_CASE("model checkpoint: a file without a stored config loads with a supplied one, and fails clearly without") {
  TempDir dir;
  t6::T6Model original(tiny_config(1));
  randomize(original, 8);
  const Snapshot values = snapshot(original);
  const std::string path = dir / "exported.safetensors";
  t6::write_safetensors(path, entries_of(original, values));  // no metadata, like a PyTorch export

  const std::string message = error_message([&] { t6::load_model(path); });
  CHECK(contains(message, path));
  CHECK(contains(message, "no model config"));
  CHECK(contains(message, "--config"));

  const std::unique_ptr<t6::T6Model> loaded = t6::load_model(path, tiny_config(5));
  CHECK(same_bits(snapshot(*loaded), values));

  SUBCASE("a supplied config must agree with a stored one on every shape-defining key") {
    t6::save_model(original, path);
    t6::ModelConfig longer = tiny_config(9);  // init_seed and block_size do not change any shape
    longer.block_size = 32;
    CHECK(t6::checkpoint_config(t6::SafetensorsFile::open(path), longer).block_size == 32);
    CHECK(t6::checkpoint_config(t6::SafetensorsFile::open(path), std::nullopt).block_size == 16);

    t6::ModelConfig deeper = tiny_config(1);
    deeper.n_layer = 3;
    const std::string mismatch = error_message([&] { t6::checkpoint_config(t6::SafetensorsFile::open(path), deeper); });
    CHECK(contains(mismatch, "does not match the config given"));
    CHECK(contains(mismatch, "\"n_layer\":3"));
  }
}

TEST_CASE("model checkpoint: the tied matrix may be stored as lm_head.weight, or under both names if equal") {
  TempDir dir;
  t6::T6Model original(tiny_config(1));
  randomize(original, 9);
  Snapshot values = snapshot(original);
  const std::vector<t6::SafetensorsWriteEntry> entries = entries_of(original, values);
  REQUIRE(entries[0].name == kWte);
  const std::string path = dir / "tied.safetensors";

  SUBCASE("only as lm_head.weight") {
    std::vector<t6::SafetensorsWriteEntry> renamed = entries;
    renamed[0].name = "lm_head.weight";
    t6::write_safetensors(path, renamed);
    CHECK(same_bits(snapshot(*t6::load_model(path, tiny_config(3))), values));
  }
  SUBCASE("under both names, equal: lm_head.weight first or last") {
    std::vector<t6::SafetensorsWriteEntry> both = entries;
    both.push_back({"lm_head.weight", entries[0].shape, entries[0].data});
    t6::write_safetensors(path, both);
    CHECK(same_bits(snapshot(*t6::load_model(path, tiny_config(3))), values));
    std::rotate(both.begin(), both.end() - 1, both.end());
    t6::write_safetensors(path, both);
    CHECK(same_bits(snapshot(*t6::load_model(path, tiny_config(3))), values));
  }
  SUBCASE("under both names, different values or shapes: refused, the model untouched") {
    std::vector<float> head = values[0].second;
    head[5] += 1.0f;
    std::vector<t6::SafetensorsWriteEntry> both = entries;
    both.push_back({"lm_head.weight", entries[0].shape, head.data()});
    t6::write_safetensors(path, both);
    t6::T6Model target(tiny_config(3));
    const Snapshot before = snapshot(target);
    CHECK(contains(error_message([&] { t6::load_model_weights(target, t6::SafetensorsFile::open(path)); }),
                   "both \"transformer.wte.weight\" and \"lm_head.weight\" are present but differ"));
    CHECK(same_bits(snapshot(target), before));

    both.back() = {"lm_head.weight", {4, 16}, head.data()};
    t6::write_safetensors(path, both);
    CHECK(contains(error_message([&] { t6::load_model_weights(target, t6::SafetensorsFile::open(path)); }),
                   "\"lm_head.weight\" has shape [4, 16] but \"transformer.wte.weight\" [64, 16]"));
    CHECK(same_bits(snapshot(target), before));
  }
}

TEST_CASE("model checkpoint: missing, unexpected, misshapen and wrongly typed tensors are all reported in one error") {
  TempDir dir;
  t6::T6Model original(tiny_config(1));
  randomize(original, 10);
  std::vector<RawTensor> tensors;
  for (const auto& [name, p] : original.named_parameters()) {
    if (name == "transformer.h.1.mlp.c_fc1.weight") continue;  // missing
    if (name == "transformer.h.0.attn.c_proj.weight") {        // [16, 16] stored as [16, 8]
      tensors.push_back({name, "F32", {16, 8}, bytes_of(std::vector<float>(128, 0.5f))});
    } else if (name == "transformer.h.1.attn.c_proj.weight") {  // integers
      tensors.push_back({name, "I64", p.shape(), bytes_of(std::vector<int64_t>(p.numel(), 1))});
    } else {
      tensors.push_back({name, "F32", p.shape(), bytes_of(p.to_vector<float>())});
    }
  }
  tensors.push_back({"transformer.h.0.attn.bias", "F32", {4}, bytes_of(std::vector<float>(4, 0.0f))});
  const std::string path = dir.write("mixed.safetensors", raw_safetensors(tensors));

  t6::T6Model target(tiny_config(2));
  const Snapshot before = snapshot(target);
  const std::string message = error_message([&] { t6::load_model_weights(target, t6::SafetensorsFile::open(path)); });
  CHECK(contains(message, path + ": cannot load this checkpoint into the model (4 problems):"));
  CHECK(contains(message, "missing tensor \"transformer.h.1.mlp.c_fc1.weight\" of shape [42, 16]"));
  CHECK(contains(message, "unexpected tensor \"transformer.h.0.attn.bias\""));
  CHECK(contains(
      message, "tensor \"transformer.h.0.attn.c_proj.weight\" has shape [16, 8] but the model config needs [16, 16]"));
  CHECK(contains(message, "tensor \"transformer.h.1.attn.c_proj.weight\" has dtype I64; supported: F32, F64, BF16"));
  CHECK_FALSE(contains(message, "missing tensor \"transformer.h.1.attn.c_proj.weight\""));  // once, as a dtype problem
  CHECK(same_bits(snapshot(target), before));

  SUBCASE("without the tied matrix, the message names both accepted names") {
    tensors.erase(tensors.begin());
    dir.write("mixed.safetensors", raw_safetensors(tensors));
    CHECK(
        contains(error_message([&] { t6::load_model_weights(target, t6::SafetensorsFile::open(path)); }),
                 "missing tensor \"transformer.wte.weight\" (also accepted as \"lm_head.weight\") of shape [64, 16]"));
  }
}

TEST_CASE("model checkpoint: F64 and BF16 tensors load, converted to float32") {
  TempDir dir;
  t6::T6Model original(tiny_config(1));
  randomize(original, 11);
  std::vector<RawTensor> tensors;
  Snapshot expected;
  for (const auto& [name, p] : original.named_parameters()) {
    std::vector<float> values = p.to_vector<float>();
    if (name == kWte) {  // BF16: the top 16 bits of each float32
      std::vector<uint16_t> halves;
      for (float& v : values) {
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        halves.push_back(static_cast<uint16_t>(bits >> 16));
        bits &= 0xffff0000u;
        std::memcpy(&v, &bits, 4);
      }
      tensors.push_back({name, "BF16", p.shape(), bytes_of(halves)});
    } else {  // F64: float32 values widen exactly, so they come back bit for bit
      tensors.push_back({name, "F64", p.shape(), bytes_of(std::vector<double>(values.begin(), values.end()))});
    }
    expected.emplace_back(name, values);
  }
  const std::string path = dir.write("wide.safetensors", raw_safetensors(tensors));
  CHECK(same_bits(snapshot(*t6::load_model(path, tiny_config(4))), expected));
}

TEST_CASE("model checkpoint: a truncated or corrupted file fails with a clear error and never half-loads") {
  TempDir dir;
  t6::T6Model original(tiny_config(1));
  randomize(original, 12);
  const std::string path = dir / "model.safetensors";
  t6::save_model(original, path);
  const std::string bytes = read_file(path);

  t6::T6Model target(tiny_config(2));
  const Snapshot before = snapshot(target);
  auto load_into_target = [&](const std::string& contents) {
    const std::string broken = dir.write("broken.safetensors", contents);
    return error_message([&] { t6::load_model_weights(target, t6::SafetensorsFile::open(broken)); });
  };
  for (size_t length : {size_t{0}, size_t{5}, size_t{8}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    CAPTURE(length);
    CHECK(contains(load_into_target(bytes.substr(0, length)), "broken.safetensors"));
    CHECK(same_bits(snapshot(target), before));
  }
  std::string garbled = bytes;
  garbled[8] = '[';  // the header is no longer a JSON object
  CHECK(contains(load_into_target(garbled), "broken.safetensors"));
  std::string wrong_dtype = bytes;
  wrong_dtype.replace(wrong_dtype.find("\"F32\""), 5, "\"F16\"");  // F16 has half the bytes: wrong size
  CHECK(contains(load_into_target(wrong_dtype), "broken.safetensors"));
  CHECK(same_bits(snapshot(target), before));

  // A valid file whose last tensor does not fit: the earlier, fitting tensors are not copied either.
  std::vector<RawTensor> tensors;
  for (const auto& [name, p] : original.named_parameters())
    tensors.push_back({name, "F32", p.shape(), bytes_of(p.to_vector<float>())});
  tensors.back().shape = {static_cast<int64_t>(tensors.back().bytes.size() / 4)};
  CHECK(contains(load_into_target(raw_safetensors(tensors)), "has shape"));
  CHECK(same_bits(snapshot(target), before));
}

TEST_CASE("model checkpoint: a save killed midway leaves the previous file in place and loadable") {
  TempDir dir;
  t6::ModelConfig config = tiny_config(1);
  config.vocab_size = 256;
  config.n_embd = 64;  // ~150k parameters: the kill lands inside the tensor data
  t6::T6Model first(config), second(config);
  randomize(first, 13);
  randomize(second, 14);
  const std::string path = dir / "model.safetensors";
  t6::save_model(first, path);
  const std::string saved = read_file(path);

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child may write only half a file: the kernel kills it with SIGXFSZ at the first write past
    // the limit, as abruptly as a SIGKILL, in the middle of the temporary file.
    const rlimit no_core{0, 0}, half{saved.size() / 2, saved.size() / 2};
    setrlimit(RLIMIT_CORE, &no_core);
    setrlimit(RLIMIT_FSIZE, &half);
    std::signal(SIGXFSZ, SIG_DFL);
    t6::save_model(second, path);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGXFSZ);

  CHECK(read_file(path) == saved);
  CHECK(same_bits(snapshot(*t6::load_model(path)), snapshot(first)));
  const std::string stale = path + ".tmp." + std::to_string(child);
  REQUIRE(std::filesystem::exists(stale));  // the interrupted write: half a file, refused cleanly
  CHECK(std::filesystem::file_size(stale) == saved.size() / 2);
  CHECK(contains(error_message([&] { t6::SafetensorsFile::open(stale); }), stale));
}
