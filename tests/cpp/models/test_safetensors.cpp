// The safetensors reader on hand-made hostile files: every rule of csrc/models/safetensors.h is broken once and
// must give one line naming the file and the tensor or field; load_weights is all-or-nothing and never casts.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "csrc/models/safetensors.h"
#include "csrc/models/vit.h"
#include "csrc/models/weights.h"

using namespace mnq::models;
namespace fs = std::filesystem;

namespace {

fs::path file_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "mnq_test_safetensors";
  fs::create_directories(dir);
  return dir / name;
}

// A file with the given header text (length field = its size + `length_delta`) and data bytes.
std::string make_file(const std::string& header, const std::string& data, int64_t length_delta = 0) {
  const uint64_t n = uint64_t(int64_t(header.size()) + length_delta);
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

std::string write(const std::string& bytes) {
  const fs::path f = file_path("t.safetensors");
  std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes;
  return f.string();
}

// The message of reading `bytes` as a file (empty when it reads).
std::string read_error(const std::string& bytes) {
  try {
    read_safetensors(write(bytes));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.begin(), s.size());
  return s;
}

const std::string kTwo =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";

}  // namespace

TEST_CASE("a well-formed file reads in offset order, padding and metadata allowed", "[safetensors]") {
  const std::string h = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("e":{"dtype":"I64","shape":[0,3],"data_offsets":[12,12]}}   )";
  const NamedTensors t = read_safetensors(write(make_file(h, floats({1, 2, 3}))));
  REQUIRE(t.size() == 3);
  REQUIRE(t[0].first == "a");
  REQUIRE(t[0].second.equal(at::tensor({1.f, 2.f})));
  REQUIRE(t[1].first == "b");
  REQUIRE(t[2].second.sizes() == at::IntArrayRef({0, 3}));
}

TEST_CASE("a header length off by a few bytes is an error, never shifted data", "[safetensors]") {
  for (int delta : {-3, -2, -1, 1, 2, 3}) {
    INFO("delta " << delta);
    const std::string msg = read_error(make_file(kTwo, floats({1, 2, 3}), delta));
    REQUIRE_THAT(msg, Catch::Contains("safetensors file '") && Catch::Contains("t.safetensors"));
  }
  REQUIRE_THAT(read_error(make_file(kTwo, "", 100)), Catch::Contains("exceeds the file"));
  REQUIRE_THAT(read_error(make_file(kTwo, floats({1, 2, 3}), int64_t(1) << 40)),
               Catch::Contains("exceeds the format's limit"));
  REQUIRE_THAT(read_error("short"), Catch::Contains("too short"));
  REQUIRE_THROWS_WITH(read_safetensors(fs::temp_directory_path().string()), Catch::Contains("not a regular file"));
  REQUIRE_THAT(read_error(make_file(" " + kTwo, floats({1, 2, 3}))), Catch::Contains("does not start with '{'"));
  REQUIRE_THAT(read_error(make_file("[1]", "")), Catch::Contains("does not start with '{'"));
}

TEST_CASE("offsets must tile the data exactly", "[safetensors]") {
  auto two = [](const char* a, const char* b) {
    return std::string(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)") + a +
           R"(},"b":{"dtype":"F32","shape":[1],"data_offsets":)" + b + "}}";
  };
  const std::string data = floats({1, 2});
  REQUIRE(read_error(make_file(two("[0,4]", "[4,8]"), data)).empty());
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[2,6]"), data + "xx")), Catch::Contains("overlaps"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[0,4]"), data)), Catch::Contains("overlaps"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[6,10]"), data + "xx")), Catch::Contains("a gap"));
  REQUIRE_THAT(read_error(make_file(two("[4,8]", "[8,12]"), data + "xxxx")), Catch::Contains("a gap"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[4,8]"), data + "x")), Catch::Contains("1 trailing bytes"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[4,8]"), "abc")), Catch::Contains("truncated"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[4.0,8]"), data)),
               Catch::Contains("tensor 'b': data_offsets[0] must be a non-negative integer, got 4.0"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[-4,8]"), data)), Catch::Contains("non-negative integer"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[8,4]"), data)), Catch::Contains("end before they begin"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[4,8,9]"), data)), Catch::Contains("must be [begin, end]"));
  REQUIRE_THAT(read_error(make_file(two("[0,4]", "[4,12]"), data + "1234")), Catch::Contains("span 8 bytes"));
}

TEST_CASE("shapes, dtypes, fields and keys are checked", "[safetensors]") {
  auto one = [](const std::string& entry) { return R"({"w":)" + entry + "}"; };
  const std::string d4 = floats({1});
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), d4)),
               Catch::Contains("tensor 'w': each shape entry must be a non-negative integer, got -1"));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), d4)),
               Catch::Contains("non-negative integer"));
  REQUIRE_THAT(
      read_error(make_file(one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})"), d4)),
      Catch::Contains("overflows"));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":[9223372036854775808,0],"data_offsets":[0,0]})"),
                                    "")),
               Catch::Contains("overflows"));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":2,"data_offsets":[0,4]})"), d4)),
               Catch::Contains("shape must be a list"));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]})"), d4)),
               Catch::Contains("unsupported dtype \"F8_E4M3\""));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":[1]})"), d4)),
               Catch::Contains("missing field 'data_offsets'"));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1})"), d4)),
               Catch::Contains("unknown field 'x'"));
  REQUIRE_THAT(read_error(make_file(one("[1]"), d4)), Catch::Contains("expected an object"));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"BOOL","shape":[4],"data_offsets":[0,4]})"), std::string("\1\0\2\0", 4))),
               Catch::Contains("BOOL data"));
  REQUIRE_THAT(read_error(make_file(R"({"__metadata__":{"a":1}})", "")), Catch::Contains("must be a string"));
  REQUIRE_THAT(read_error(make_file(R"({"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d4)),
               Catch::Contains("key 'dtype' appears twice"));
  REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":[[1]],"data_offsets":[0,4]})"), d4)),
               Catch::Contains("nests deeper"));
  REQUIRE_THAT(read_error(make_file(kTwo.substr(0, kTwo.size() - 1) + "," + kTwo.substr(1), floats({1, 2, 3}))),
               Catch::Contains("key 'a' appears twice"));
  // Invalid UTF-8 (a lone continuation byte; an overlong '/'; a surrogate) and a control character in a key.
  for (const std::string bad : {"\x80", "\xc0\xaf", "\xed\xa0\x80"}) {
    REQUIRE_THAT(read_error(make_file(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})").replace(2, 1, bad),
                                      d4)),
                 Catch::Contains("not valid UTF-8 (byte 10 of the file)"));
  }
  const std::string msg = read_error(make_file(R"({"a\nb":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", d4));
  REQUIRE_THAT(msg, Catch::Contains("tensor 'a\\x0ab'"));
  REQUIRE(msg.find('\n') == std::string::npos);
}

TEST_CASE("load_weights refuses another dtype and leaves the model untouched on any error", "[safetensors]") {
  const ViTConfig c = vit_preset("vit_mnist_tiny");
  VisionTransformer a(c), b(c);
  const fs::path f = file_path("w.safetensors");
  save_weights(*a, f.string());
  const NamedTensors good = read_safetensors(f.string());
  auto state = [&] {
    std::vector<at::Tensor> s;
    for (const auto& t : b->parameters()) s.push_back(t.detach().clone());
    return s;
  };
  const auto before = state();
  auto unchanged = [&] {
    const auto now = state();
    for (size_t i = 0; i < now.size(); ++i) {
      if (!now[i].equal(before[i])) return false;
    }
    return true;
  };
  for (auto dtype : {at::kInt, at::kHalf, at::kByte, at::kBool, at::kDouble}) {
    NamedTensors ts = good;
    ts.back().second = ts.back().second.to(dtype);  // the last parameter: every other one would load first
    write_safetensors(f.string(), ts);
    INFO(c10::toString(dtype));
    REQUIRE_THROWS_WITH(load_weights(*b, f.string()),
                        Catch::Contains(f.string()) && Catch::Contains("'" + ts.back().first + "' has dtype ") &&
                            Catch::Contains("in the file but F32 in the model"));
    REQUIRE(unchanged());
  }
  NamedTensors ts = good;
  ts.back().second = at::zeros({3});
  write_safetensors(f.string(), ts);
  REQUIRE_THROWS(load_weights(*b, f.string()));
  REQUIRE(unchanged());
  write_safetensors(f.string(), good);
  load_weights(*b, f.string());
  REQUIRE_FALSE(unchanged());
}
