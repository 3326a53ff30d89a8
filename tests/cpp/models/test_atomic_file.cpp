// util/atomic_file.h: the one atomic writer (publish, overwrite, abandon, errors as FileError naming the file),
// the fault points it passes (three per file), the temporary names and their removal after a killed writer.
// The kills themselves (MNQ_FAULT_AT) are exercised end to end by tests/python/test_fault_inject.py.
#include "csrc/util/atomic_file.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "csrc/util/fault.h"

using namespace mnq::util;
namespace fs = std::filesystem;

namespace {

struct Dir {
  fs::path path = fs::temp_directory_path() / ("mnq_atomic_" + std::to_string(::getpid()));
  Dir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() { fs::remove_all(path); }
};

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

int64_t temps_in(const fs::path& dir) {
  int64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += temp_file_pid(e.path().filename().string()) >= 0;
  return n;
}

}  // namespace

TEST_CASE("atomic file: publishes, overwrites, and leaves no temporary file", "[util]") {
  Dir d;
  const std::string target = (d.path / "a.json").string();
  const int64_t before = fault_points_passed();
  write_file_atomic(target, "first");
  CHECK(fault_points_passed() - before == 3);  // open, write, rename
  CHECK(read_file(target) == "first");
  write_file_atomic(target, std::string("second\0bytes", 12));
  CHECK(read_file(target) == std::string("second\0bytes", 12));
  CHECK(temps_in(d.path) == 0);
  write_file_atomic((d.path / "empty").string(), "");
  CHECK(read_file((d.path / "empty").string()).empty());
}

TEST_CASE("atomic file: an abandoned write leaves the target as it was", "[util]") {
  Dir d;
  const std::string target = (d.path / "w.bin").string();
  write_file_atomic(target, "old");
  {
    AtomicFile f(target);
    f.write("new, never committed");
    CHECK(temps_in(d.path) == 1);
  }
  CHECK(read_file(target) == "old");
  CHECK(temps_in(d.path) == 0);
}

TEST_CASE("atomic file: failures are FileError naming the file", "[util]") {
  Dir d;
  const std::string missing = (d.path / "no/such/dir/x.yaml").string();
  CHECK_THROWS_AS(write_file_atomic(missing, "x"), FileError);
  CHECK_THROWS_WITH(write_file_atomic(missing, "x"), Catch::Contains(missing) && Catch::Contains("No such file"));
  CHECK_THROWS_AS(read_file(missing), FileError);
  CHECK_THROWS_WITH(read_file(missing), Catch::Contains("cannot read '" + missing + "'"));
  // A directory in the target's place: the rename fails, and the temporary file is removed.
  fs::create_directories(d.path / "taken");
  CHECK_THROWS_WITH(write_file_atomic((d.path / "taken").string(), "x"),
                    Catch::Contains("cannot publish") && Catch::Contains("taken"));
  CHECK(temps_in(d.path) == 0);
}

TEST_CASE("atomic file: temporary names carry the writer's pid", "[util]") {
  const fs::path t = temp_path_beside("/some/dir/model.safetensors");
  CHECK(t.parent_path() == "/some/dir");
  CHECK(t.filename() == ".model.safetensors.tmp" + std::to_string(::getpid()));
  CHECK(temp_file_pid(t.filename().string()) == ::getpid());
  CHECK(temp_file_pid(".results.json.tmp42") == 42);
  CHECK(temp_file_pid(".a.tmp.b.tmp7") == 7);
  for (const char* not_temp : {"results.json.tmp42", ".results.json.tmp", ".results.json.tmp4x", ".tmp5",
                               "model.safetensors", ".hidden", ".x.tmp123456789012"}) {
    INFO(not_temp);
    CHECK(temp_file_pid(not_temp) == -1);
  }
}

TEST_CASE("atomic file: stale temporary files are removed, a live writer's are kept", "[util]") {
  Dir d;
  fs::create_directories(d.path / "run/fp");
  touch(d.path / "run/fp/.checkpoint.safetensors.tmp99999999");  // no such process (above any pid_max)
  touch(d.path / ("run/.results.json.tmp" + std::to_string(::getpid())));  // this pid: a previous process's
  const std::string parent = ".plan.yaml.tmp" + std::to_string(::getppid());  // a live process: a concurrent job
  touch(d.path / "run" / parent);
  touch(d.path / "run/results.json");
  touch(d.path / "run/.hidden");
  CHECK(remove_stale_temps((d.path / "run").string()) == 2);
  CHECK(!fs::exists(d.path / "run/fp/.checkpoint.safetensors.tmp99999999"));
  CHECK(fs::exists(d.path / "run" / parent));
  CHECK(fs::exists(d.path / "run/results.json"));
  CHECK(fs::exists(d.path / "run/.hidden"));
  CHECK(remove_stale_temps((d.path / "nothing_here").string()) == 0);
}
