// The one way a run publishes a file (SPEC-independent; STYLE rule 18): bytes go to a hidden temporary file beside
// the target, `.<name>.tmp<pid>` (rename() is atomic only within one file system), which is fsync'ed, renamed over
// the target and followed by an fsync of the directory. A reader, or a job resumed after a kill or a power loss,
// sees the previous file or the new one, never a mix; the rename is durable once commit() returns. A kill leaves
// at most the temporary file, which remove_stale_temps() deletes when a job starts or resumes.
//
// Every failure (open, write, fsync, rename, read) throws util::FileError naming the file and the OS reason.
// MNQ_FAULT_AT / MNQ_FAULT_TRACE (util/fault.h) kill the process at chosen points of these writes, for the
// crash-consistency tests.
#pragma once

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mnq {
namespace util {

// A file that cannot be written, published or read. Python sees it as OSError (mnq._mnq.FileError).
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whether this process publishes files (default true). A data-parallel job's ranks other than 0 compute the same
// bytes as rank 0 and publish nothing (csrc/train/data_parallel.h): there every AtomicFile discards what it is
// given, write_file_atomic writes nothing and remove_stale_temps removes nothing (rank 0's temporary files are
// its own). One switch here, so no writer of the layers above can forget it.
void set_publishing(bool publish);
bool publishing();

// A file being written. Construction creates the temporary file; write() appends; commit() publishes it. Destroyed
// without commit() (an exception on the way), it removes the temporary file and leaves the target as it was.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // fsync the temporary file, rename it over the target, fsync the directory.
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool discard_ = false;  // !publishing(): nothing is written
};

// Publishes `bytes` as `path` (AtomicFile in one call).
void write_file_atomic(const std::string& path, std::string_view bytes);
// The whole file; FileError naming it when it cannot be read.
std::string read_file(const std::string& path);

// `.<name>.tmp<pid>` beside `target`, for this process.
std::filesystem::path temp_path_beside(const std::filesystem::path& target);
// The pid of a temporary file's name `.<name>.tmp<pid>`, or -1 when `filename` is not one.
long temp_file_pid(const std::string& filename);
// Deletes the temporary files under `dir` (recursively) left by killed writers: those whose process is gone, and
// those carrying this process's id (a previous process that had it; this one has not written there yet).
// Temporary files of a live other process (a concurrent writer) are left alone. Returns how many were removed.
int64_t remove_stale_temps(const std::string& dir);

}  // namespace util
}  // namespace mnq
