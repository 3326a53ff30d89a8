// Every test case of the LibTorch-linked suites starts from the same random state: LibTorch seeds its default CPU
// generator differently in each process (torch 2.15: torch.initial_seed() changes from run to run), so a test that
// draws at::randn / at::randint without its own at::manual_seed would see new inputs on every run (a tolerance
// check in the model tests failed one run in three that way). The Python tests do the same in conftest.py.
// Compiled alone (SKIP_UNITY_BUILD_INCLUSION): the listener interface needs CATCH_CONFIG_EXTERNAL_INTERFACES before
// the first catch.hpp of the unit.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <ATen/Context.h>
#include <catch2/catch.hpp>

namespace {

struct SeedEachTestCase : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo&) override { at::manual_seed(0); }
};

}  // namespace

CATCH_REGISTER_LISTENER(SeedEachTestCase)
