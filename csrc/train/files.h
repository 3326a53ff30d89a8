// Small file helpers of the trainer: every file it writes is published atomically (temp file + rename).
#pragma once

#include <string>

namespace mnq {
namespace train {

void write_text_atomic(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);  // throws naming the file

}  // namespace train
}  // namespace mnq
