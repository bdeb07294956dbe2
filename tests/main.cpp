// The one doctest runner for the whole suite; every tests/*.cpp file adds its cases to it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <map>
#include <ostream>
#include <string>

namespace {

// Says why test cases were skipped: one line per reason (the description a skip_unless decorator
// gave them, tests/skip_unless.h) with how many cases it skipped, printed just before doctest's
// summary, whose "skipped" count includes them. Cases left out by command-line filters have no such
// reason and are not listed.
class SkipReasons : public doctest::IReporter {
 public:
  explicit SkipReasons(const doctest::ContextOptions& options) : out_(*options.cout) {}

  void test_case_skipped(const doctest::TestCaseData& test) override {
    if (test.m_skip && test.m_description != nullptr) ++skipped_[test.m_description];
  }
  void test_run_end(const doctest::TestRunStats&) override {
    for (const auto& [reason, count] : skipped_)
      out_ << "[doctest] skipped " << count << (count == 1 ? " test case: " : " test cases: ") << reason << "\n";
  }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}

 private:
  std::ostream& out_;
  std::map<std::string, int> skipped_;
};

REGISTER_LISTENER("skip_reasons", 1, SkipReasons);

}  // namespace
