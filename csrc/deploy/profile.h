// Wall time of the integer engine per op type (the benchmark's table): a Profile is handed down a forward when
// the caller asks for one; nullptr costs one branch per op.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <map>
#include <string>

namespace mnq {
namespace deploy {

struct Profile {
  std::map<std::string, double> seconds;  // op type -> accumulated wall seconds
  bool synchronize = false;               // wait for the device before reading the clock (CUDA)
};

// Adds the time from construction to destruction to prof->seconds[key] (no-op without a profile).
class ProfileScope {
 public:
  ProfileScope(Profile* prof, const char* key) : prof_(prof), key_(key) {
    if (prof_) start_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  Profile* prof_;
  const char* key_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace deploy
}  // namespace mnq
