#include "csrc/util/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "csrc/util/fault.h"

namespace mnq {
namespace util {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_publishing{true};

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw FileError("cannot " + what + " '" + path + "': " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// The rename is in the directory's entries: without this fsync a power cut can forget it (the new file's data is
// already durable, its name may not be). File systems that cannot fsync a directory say EINVAL; nothing to do then.
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open the directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) fail("fsync the directory", dir, err);
}

}  // namespace

void set_publishing(bool publish) { g_publishing = publish; }
bool publishing() { return g_publishing; }

fs::path temp_path_beside(const fs::path& target) {
  return target.parent_path() / ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()));
}

long temp_file_pid(const std::string& name) {
  const size_t at = name.rfind(".tmp");
  if (name.size() < 2 || name[0] != '.' || at == std::string::npos || at == 0 || at + 4 >= name.size()) return -1;
  long pid = 0;
  for (size_t i = at + 4; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || pid > 100000000) return -1;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

int64_t remove_stale_temps(const std::string& dir) {
  if (!publishing()) return 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  std::vector<fs::path> stale;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const long pid = temp_file_pid(it->path().filename().string());
    if (pid < 0) continue;
    // kill(pid, 0) fails with ESRCH when no such process exists: its writer was killed.
    const bool other_live = pid != long(::getpid()) && (::kill(pid_t(pid), 0) == 0 || errno == EPERM);
    if (!other_live) stale.push_back(it->path());
  }
  int64_t removed = 0;
  for (const fs::path& p : stale) removed += fs::remove(p, ec) ? 1 : 0;
  return removed;
}

AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(temp_path_beside(path).string()), discard_(!publishing()) {
  if (discard_) return;
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) fail("write", path_, errno);
  fault_point("open", path_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (discard_) return;
  if (fd_ < 0) throw std::logic_error("AtomicFile::write after commit: " + path_);
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write", path_, errno);
    }
    p += w;
    n -= size_t(w);
  }
}

void AtomicFile::commit() {
  if (discard_) return;
  if (fd_ < 0) throw std::logic_error("AtomicFile::commit twice: " + path_);
  if (::fsync(fd_) != 0) fail("write (fsync)", path_, errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("write (close)", path_, err);
  }
  fault_point("write", path_);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("publish (rename onto)", path_, err);
  }
  fault_point("rename", path_);
  fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw FileError("cannot read '" + path + "': read error");
  return ss.str();
}

}  // namespace util
}  // namespace mnq
