// Helpers shared by the model tests (test_qvit.cpp, test_qswin.cpp).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace mnq_test {

// `name` in a per-process temporary folder of the test `tag` (created on first use).
inline std::filesystem::path temp_file(const std::string& tag, const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / ("mnq_" + tag + "_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d / name;
}

}  // namespace mnq_test
