// Where plans and weights files are written before the rename that publishes them atomically.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace mnq {
namespace models {

// A hidden file beside `target` (rename() is atomic only within one file system), unique per process.
inline std::filesystem::path temp_path_beside(const std::filesystem::path& target) {
  std::string name = ".";
  name += target.filename().string();
  name += ".tmp";
  name += std::to_string(::getpid());
  return target.parent_path() / name;
}

}  // namespace models
}  // namespace mnq
