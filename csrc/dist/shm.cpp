// Intra-host shared-memory collectives (csrc/dist/shm.h).
#include "csrc/dist/shm.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <new>
#include <random>
#include <thread>

#include "csrc/dist/dist.h"

namespace mnq {
namespace dist {
namespace {

constexpr uint64_t kMagic = 0x6d6e712d73686d31ULL;  // "mnq-shm1"
constexpr size_t kSlotBytes = size_t{1} << 20;      // per rank and parity: larger tensors go in chunks
constexpr size_t kAlign = 64;                       // a cache line: no false sharing between ranks' words
constexpr int64_t kSpinNs = 20'000;                 // then sched_yield (gives the core to a runnable peer) ...
constexpr int64_t kYieldNs = 200'000;               // ... then sleep on the futex
constexpr int64_t kSleepSliceNs = 20'000'000;       // futex sleeps this long at most between fault checks
constexpr int64_t kProbeNs = 50'000'000;            // how often a waiting rank checks that the others live

static_assert(std::atomic<uint32_t>::is_always_lock_free && sizeof(std::atomic<uint32_t>) == 4,
              "the futex word must be a plain 32-bit word");
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free,
              "process-shared atomics must be lock-free");

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // system-wide: comparable between the ranks' processes
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

long futex(std::atomic<uint32_t>* word, int op, uint32_t value, const timespec* timeout) {
  // Not FUTEX_PRIVATE: the word is shared between processes.
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, timeout, nullptr, 0);
}

}  // namespace

// Per rank: its liveness mutex and its arrivals. One cache line or more each.
struct alignas(kAlign) RankState {
  pthread_mutex_t alive;               // held by the rank's keeper thread while the rank lives (robust)
  std::atomic<uint64_t> arrived{0};    // barrier rounds entered
  std::atomic<int64_t> arrive_ns[2];   // when it entered the last round of each parity (CLOCK_MONOTONIC)
};

struct LocalGroup::Segment {
  uint64_t magic = kMagic;
  uint64_t token = 0;
  int32_t world = 0;
  alignas(kAlign) std::atomic<uint32_t> count{0};     // ranks arrived in the current round
  alignas(kAlign) std::atomic<uint32_t> gen{0};       // rounds completed (the futex word)
  std::atomic<uint32_t> sleepers{0};                  // ranks asleep on gen: the last arrival wakes them
  alignas(kAlign) std::atomic<uint32_t> claimed{0};   // the first failing rank claims the reason
  std::atomic<int32_t> failed{0};                     // 1 + that rank, once its reason is written
  char reason[480] = {};

  RankState* ranks() { return reinterpret_cast<RankState*>(reinterpret_cast<char*>(this) + round_up(sizeof(*this))); }
  char* slot(int parity, int rank) {
    return reinterpret_cast<char*>(ranks()) + round_up(sizeof(RankState)) * size_t(world) +
           (size_t(parity) * size_t(world) + size_t(rank)) * kSlotBytes;
  }
  static size_t bytes(int world) {
    return round_up(sizeof(Segment)) + round_up(sizeof(RankState)) * size_t(world) + 2 * size_t(world) * kSlotBytes;
  }
};

// Holds this rank's liveness mutex from a thread of its own that lives as long as the group, so the mutex is
// released ("owner died") exactly when the process ends (or the group is closed), not when some caller's thread
// ends.
struct LocalGroup::Keeper {
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;

  explicit Keeper(pthread_mutex_t* alive) {
    std::promise<int> locked;
    std::future<int> rc = locked.get_future();
    thread = std::thread([this, alive, locked = std::move(locked)]() mutable {
      int r = pthread_mutex_lock(alive);
      if (r == EOWNERDEAD) r = pthread_mutex_consistent(alive);
      locked.set_value(r);
      if (r != 0) return;
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [this] { return stop; });
      pthread_mutex_unlock(alive);
    });
    if (const int r = rc.get(); r != 0) {
      thread.join();
      throw std::runtime_error(fmt::format("cannot lock the liveness mutex: {}", std::strerror(r)));
    }
  }
  ~Keeper() {
    {
      const std::lock_guard<std::mutex> lock(m);
      stop = true;
    }
    cv.notify_one();
    thread.join();
  }
};

std::unique_ptr<LocalGroup> LocalGroup::create(c10d::Store& store, const std::string& key, int rank, int world,
                                               std::string* why) {
  std::unique_ptr<LocalGroup> g(new LocalGroup);
  g->rank_ = rank;
  g->world_ = world;
  g->size_ = Segment::bytes(world);
  std::string name, failure;
  uint64_t token = 0;
  const auto map = [&](int fd) {
    void* p = mmap(nullptr, g->size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) throw std::runtime_error(fmt::format("mmap: {}", std::strerror(errno)));
    g->base_ = p;
    g->seg_ = static_cast<Segment*>(p);
  };
  try {
    if (rank == 0) {
      std::random_device rd;
      token = (uint64_t(rd()) << 32) ^ rd();
      const std::string candidate = fmt::format("/mnq_dp_{}_{:016x}", getpid(), token);
      const int fd = shm_open(candidate.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
      if (fd < 0) throw std::runtime_error(fmt::format("shm_open {}: {}", candidate, std::strerror(errno)));
      name = candidate;  // ours: unlinked below whatever happens
      // Reserve the pages now: a tmpfs too small for them (a container's 64 MB /dev/shm and many ranks) then says
      // so here, and every rank stays on Gloo, instead of a SIGBUS at the first touch of a missing page.
      if (const int rc = posix_fallocate(fd, 0, off_t(g->size_)); rc != 0) {
        close(fd);
        throw std::runtime_error(fmt::format("reserving {} bytes for {}: {}", g->size_, name, std::strerror(rc)));
      }
      map(fd);
      Segment* s = new (g->base_) Segment;
      s->token = token;
      s->world = world;
      pthread_mutexattr_t attr;
      pthread_mutexattr_init(&attr);
      pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
      pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
      for (int r = 0; r < world; ++r) {
        RankState* st = new (s->ranks() + r) RankState;
        st->arrive_ns[0] = st->arrive_ns[1] = 0;
        pthread_mutex_init(&st->alive, &attr);
      }
      pthread_mutexattr_destroy(&attr);
    }
  } catch (const std::exception& e) {
    failure = e.what();
    if (!name.empty()) shm_unlink(name.c_str());  // created, then failed: leave nothing in /dev/shm
    name.clear();
  }
  if (rank == 0) {
    const std::string v = name.empty() ? "" : fmt::format("{} {:016x}", name, token);
    store.set(key + "/name", std::vector<uint8_t>(v.begin(), v.end()));
  } else {
    const std::vector<uint8_t> v = store.get(key + "/name");  // waits for rank 0 (the store's timeout)
    const std::string s(v.begin(), v.end());
    try {
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) throw std::runtime_error("rank 0 could not create the segment");
      name = s.substr(0, sp);
      token = std::stoull(s.substr(sp + 1), nullptr, 16);
      const int fd = shm_open(name.c_str(), O_RDWR, 0);
      if (fd < 0) throw std::runtime_error(fmt::format("shm_open {}: {} (another host?)", name, std::strerror(errno)));
      struct stat st {};
      if (fstat(fd, &st) != 0 || size_t(st.st_size) != g->size_) {
        close(fd);
        throw std::runtime_error(fmt::format("{} has another size than {} ranks need", name, world));
      }
      map(fd);
      if (g->seg_->magic != kMagic || g->seg_->token != token || g->seg_->world != world) {
        throw std::runtime_error(fmt::format("{} is not this group's segment (another host?)", name));
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  if (failure.empty()) {
    try {
      g->keeper_ = std::make_unique<Keeper>(&g->seg_->ranks()[rank].alive);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  const std::string ok = failure.empty() ? "1" : "0";
  store.set(fmt::format("{}/ok/{}", key, rank), std::vector<uint8_t>(ok.begin(), ok.end()));
  bool all = true;
  int first_bad = -1;
  for (int r = 0; r < world; ++r) {
    const std::vector<uint8_t> v = store.get(fmt::format("{}/ok/{}", key, r));
    if (v != std::vector<uint8_t>{'1'}) {
      all = false;
      if (first_bad < 0) first_bad = r;
    }
  }
  if (rank == 0 && !name.empty()) shm_unlink(name.c_str());  // every rank has mapped it or given up
  if (!all) {
    if (why) *why = failure.empty() ? fmt::format("rank {} could not map the segment", first_bad) : failure;
    return nullptr;  // the destructor unmaps
  }
  return g;
}

LocalGroup::~LocalGroup() {
  keeper_.reset();
  if (base_) munmap(base_, size_);
}

bool LocalGroup::handles(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != at::kCPU || !t.is_contiguous() || t.is_sparse()) return false;
  switch (t.scalar_type()) {
    case at::kFloat:
    case at::kDouble:
    case at::kInt:
    case at::kLong:
    case at::kByte:
      return true;
    default:
      return false;
  }
}

[[noreturn]] void LocalGroup::fail(const char* what, const std::string& reason, double timeout_s) {
  Segment& s = *seg_;
  std::string text = reason;
  uint32_t expected = 0;
  if (s.claimed.compare_exchange_strong(expected, 1)) {
    std::snprintf(s.reason, sizeof(s.reason), "%s", reason.c_str());
    s.failed.store(rank_ + 1, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the flag before the wake-up
    futex(&s.gen, FUTEX_WAKE, INT32_MAX, nullptr);
  } else {
    while (s.failed.load(std::memory_order_acquire) == 0) cpu_relax();  // its reason is being written
    const int first = s.failed.load(std::memory_order_acquire) - 1;
    text = first == rank_ ? std::string(s.reason) : fmt::format("rank {} failed first: {}", first, s.reason);
  }
  throw CollectiveError(fmt::format("data-parallel {} failed on rank {} of {} (intra-host shared memory: {}){}",
                                    what, rank_, world_, text,
                                    timeout_s > 0 ? fmt::format(" (dist.timeout_s = {})", int64_t(timeout_s)) : ""));
}

void LocalGroup::arrive_and_wait(const char* what, double timeout_s) {
  Segment& s = *seg_;
  RankState* ranks = s.ranks();
  const int parity = int(seq_ & 1);
  if (s.failed.load(std::memory_order_acquire) != 0) fail(what, "", timeout_s);
  const int64_t t0 = now_ns();
  ranks[rank_].arrive_ns[parity].store(t0, std::memory_order_relaxed);
  ranks[rank_].arrived.store(seq_ + 1, std::memory_order_release);
  const uint32_t g = s.gen.load(std::memory_order_acquire);  // cannot move on before this rank arrives
  if (s.count.fetch_add(1, std::memory_order_acq_rel) + 1 == uint32_t(world_)) {
    s.count.store(0, std::memory_order_relaxed);
    s.gen.store(g + 1, std::memory_order_seq_cst);
    if (s.sleepers.load(std::memory_order_seq_cst) > 0) futex(&s.gen, FUTEX_WAKE, INT32_MAX, nullptr);
  } else {
    const int64_t deadline = t0 + int64_t(timeout_s * 1e9);
    int64_t next_probe = t0 + kProbeNs;
    while (s.gen.load(std::memory_order_acquire) == g) {
      const int64_t t = now_ns();
      if (t - t0 < kSpinNs) {
        for (int i = 0; i < 16; ++i) cpu_relax();
        continue;
      }
      if (t - t0 < kYieldNs) {
        sched_yield();  // the peer may need this core
        continue;
      }
      if (s.failed.load(std::memory_order_acquire) != 0) fail(what, "", timeout_s);
      if (t >= next_probe) {
        next_probe = t + kProbeNs;
        // A rank whose keeper no longer holds its mutex has ended (the kernel released the robust mutex).
        std::string dead;
        for (int r = 0; r < world_; ++r) {
          if (r == rank_) continue;
          const int rc = pthread_mutex_trylock(&ranks[r].alive);
          if (rc == EBUSY) continue;
          if (rc == EOWNERDEAD) pthread_mutex_consistent(&ranks[r].alive);
          if (rc == 0 || rc == EOWNERDEAD) {
            pthread_mutex_unlock(&ranks[r].alive);  // so every prober sees it free
            dead += (dead.empty() ? "" : ", ") + std::to_string(r);
          }
        }
        if (!dead.empty() && s.gen.load(std::memory_order_acquire) == g) {
          const bool one = dead.find(',') == std::string::npos;
          fail(what, fmt::format("the process of rank{} {} ended; rank{} {} did not answer: dead", one ? "" : "s",
                                 dead, one ? "" : "s", dead),
               timeout_s);
        }
      }
      if (t >= deadline && s.gen.load(std::memory_order_acquire) == g) {
        std::string missing;
        for (int r = 0; r < world_; ++r) {
          if (ranks[r].arrived.load(std::memory_order_acquire) <= seq_) {
            missing += (missing.empty() ? "" : ", ") + std::to_string(r);
          }
        }
        const bool one = missing.find(',') == std::string::npos;
        fail(what, fmt::format("no answer within {:g} s; rank{} {} did not answer: dead or hung", timeout_s,
                               one ? "" : "s", missing),
             timeout_s);
      }
      s.sleepers.fetch_add(1, std::memory_order_seq_cst);
      const int64_t slice = std::min(kSleepSliceNs, std::max<int64_t>(deadline - t, 1'000'000));
      const timespec ts{time_t(slice / 1'000'000'000), long(slice % 1'000'000'000)};
      futex(&s.gen, FUTEX_WAIT, g, &ts);  // returns at once if gen moved on already
      s.sleepers.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  // The lag behind the last rank to arrive: this round's arrival times stay until the round after next.
  int64_t last = t0;
  for (int r = 0; r < world_; ++r) {
    last = std::max(last, ranks[r].arrive_ns[parity].load(std::memory_order_relaxed));
  }
  stats_.wait_s += double(last - t0) * 1e-9;
  ++stats_.barriers;
  ++seq_;
}

namespace {

// out ← src[0] ∘ src[1] ∘ … ∘ src[world−1], left to right: the same order on every rank. Max and min keep a NaN
// (as torch's maximum / minimum do), so a diverged rank's NaN reaches every rank.
template <class T>
void reduce_slots(T* out, const char* const* src, int world, size_t n, LocalOp op) {
  std::memcpy(out, src[0], n * sizeof(T));
  for (int r = 1; r < world; ++r) {
    const T* s = reinterpret_cast<const T*>(src[r]);
    switch (op) {
      case LocalOp::kSum:
        for (size_t i = 0; i < n; ++i) out[i] = out[i] + s[i];
        break;
      case LocalOp::kMax:
        for (size_t i = 0; i < n; ++i) out[i] = (out[i] > s[i] || out[i] != out[i]) ? out[i] : s[i];
        break;
      case LocalOp::kMin:
        for (size_t i = 0; i < n; ++i) out[i] = (out[i] < s[i] || out[i] != out[i]) ? out[i] : s[i];
        break;
    }
  }
}

// `n` bytes at `out` of tensor t's dtype, reduced over the slots `srcs`.
void reduce_bytes(const at::Tensor& t, void* out, const char* const* srcs, int world, size_t n, LocalOp op) {
  const size_t k = n / t.element_size();
  switch (t.scalar_type()) {
    case at::kFloat: return reduce_slots(static_cast<float*>(out), srcs, world, k, op);
    case at::kDouble: return reduce_slots(static_cast<double*>(out), srcs, world, k, op);
    case at::kInt: return reduce_slots(static_cast<int32_t*>(out), srcs, world, k, op);
    case at::kLong: return reduce_slots(static_cast<int64_t*>(out), srcs, world, k, op);
    case at::kByte: return reduce_slots(static_cast<uint8_t*>(out), srcs, world, k, op);
    default: TORCH_CHECK(false, "LocalGroup: unsupported dtype ", t.scalar_type());
  }
}

}  // namespace

bool LocalGroup::handles_min_max(const at::Tensor& lo, const at::Tensor& hi) {
  return handles(lo) && handles(hi) && lo.scalar_type() == hi.scalar_type() && lo.nbytes() + hi.nbytes() <= kSlotBytes;
}

void LocalGroup::allreduce_min_max(const at::Tensor& lo, const at::Tensor& hi, double timeout_s) {
  const int64_t t0 = now_ns();
  const size_t nlo = lo.nbytes(), nhi = hi.nbytes();
  const int parity = int(seq_ & 1);
  char* mine = seg_->slot(parity, rank_);
  std::memcpy(mine, lo.data_ptr(), nlo);
  std::memcpy(mine + nlo, hi.data_ptr(), nhi);
  arrive_and_wait("all-reduce", timeout_s);
  std::vector<const char*> srcs(static_cast<size_t>(world_));
  for (int r = 0; r < world_; ++r) srcs[size_t(r)] = seg_->slot(parity, r);
  reduce_bytes(lo, lo.data_ptr(), srcs.data(), world_, nlo, LocalOp::kMin);
  for (int r = 0; r < world_; ++r) srcs[size_t(r)] += nlo;
  reduce_bytes(hi, hi.data_ptr(), srcs.data(), world_, nhi, LocalOp::kMax);
  ++stats_.collectives;
  stats_.bytes += int64_t(nlo + nhi);
  stats_.wall_s += double(now_ns() - t0) * 1e-9;
}

void LocalGroup::allreduce(const at::Tensor& t, LocalOp op, double timeout_s) {
  const int64_t t0 = now_ns();
  char* data = static_cast<char*>(t.data_ptr());
  const size_t bytes = t.nbytes(), elem = t.element_size();
  const size_t chunk = kSlotBytes / elem * elem;
  std::vector<const char*> srcs(static_cast<size_t>(world_));
  for (size_t off = 0; off < bytes; off += chunk) {
    const size_t n = std::min(chunk, bytes - off);
    const int parity = int(seq_ & 1);
    std::memcpy(seg_->slot(parity, rank_), data + off, n);
    arrive_and_wait("all-reduce", timeout_s);
    for (int r = 0; r < world_; ++r) srcs[size_t(r)] = seg_->slot(parity, r);
    reduce_bytes(t, data + off, srcs.data(), world_, n, op);
  }
  ++stats_.collectives;
  stats_.bytes += int64_t(bytes);
  stats_.wall_s += double(now_ns() - t0) * 1e-9;
}

void LocalGroup::barrier(double timeout_s) {
  const int64_t t0 = now_ns();
  arrive_and_wait("barrier", timeout_s);
  ++stats_.collectives;
  stats_.wall_s += double(now_ns() - t0) * 1e-9;
}

}  // namespace dist
}  // namespace mnq
