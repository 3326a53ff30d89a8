// A thread's last call's constants, kept for its next call with the same key (the ops' front ends: I-BERT GELU's
// per-channel host constants, PTF LayerNorm's host and kernel constants). A model's forward passes the same
// parameters at every call, and making their constants costs µs that show at batch 1.
//
// The key is the bytes of what the constants depend on, compared with a copy (values bit for bit, not a tensor's
// identity, data pointer or version counter: a buffer updated in place, or another tensor at a freed one's address,
// must miss). Its parts are compared in order as one byte string, so a key must hold the sizes that fix its parts'
// lengths (e.g. the channel count and the dtypes before the channel values). Store only constants that passed every
// check, so that a hit raises nothing a computation would have.
#pragma once

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <vector>

namespace mnq {
namespace ops {

struct KeyPart {
  const void* data;
  size_t bytes;
};
template <class T>
KeyPart key_of(const T& v) {  // a scalar part (sizes, flags, a double's bits)
  return KeyPart{&v, sizeof(T)};
}

template <class V>
class LastCall {
 public:
  // The kept value when `key` equals the stored key byte for byte, else nullptr.
  const V* find(std::initializer_list<KeyPart> key) const {
    if (!valid_) return nullptr;
    size_t at = 0;
    for (const KeyPart& k : key) {
      if (k.bytes > key_.size() - at || (k.bytes > 0 && std::memcmp(key_.data() + at, k.data, k.bytes) != 0)) {
        return nullptr;
      }
      at += k.bytes;
    }
    return at == key_.size() ? &value_ : nullptr;
  }
  // Keeps `value` under `key` (invalid while it is replaced) and returns it.
  const V& store(std::initializer_list<KeyPart> key, V value) {
    valid_ = false;
    key_.clear();
    for (const KeyPart& k : key) {
      const auto* p = static_cast<const unsigned char*>(k.data);
      key_.insert(key_.end(), p, p + k.bytes);
    }
    value_ = std::move(value);
    valid_ = true;
    return value_;
  }

 private:
  bool valid_ = false;
  std::vector<unsigned char> key_;
  V value_{};
};

}  // namespace ops
}  // namespace mnq
