// Differential tests: every kernel this CPU supports must behave exactly like
// the scalar reference (output, consumption, state, statuses) for any input
// and any chunking.
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "common/yenc/decode_kernels.h"
#include "common/yenc/yenc.h"
#include "tests/common/yenc/test_articles.h"

namespace nzbmesh::yenc {
namespace {

using testing::Decode;
using testing::DecodeOutcome;
using testing::Diff;
using Mode = ArticleDecoder::Mode;

constexpr Mode kModes[] = {Mode::kNntp, Mode::kRaw};

// Decodes `in` with every kernel and chunking and compares with the scalar
// kernel fed everything at once.
void ExpectAllKernelsAgree(absl::string_view in, const std::vector<std::vector<size_t>>& chunkings,
                           const std::string& what) {
  for (Mode mode : kModes) {
    const DecodeOutcome want = Decode(in, Kernel::kScalar, mode);
    for (Kernel k : testing::SupportedKernels()) {
      for (const std::vector<size_t>& chunks : chunkings) {
        const DecodeOutcome got = Decode(in, k, mode, chunks);
        const std::string diff = Diff(want, got);
        ASSERT_EQ(diff, "") << what << " kernel=" << KernelName(k)
                            << " mode=" << (mode == Mode::kNntp ? "nntp" : "raw")
                            << " first chunk=" << (chunks.empty() ? 0 : chunks[0]);
      }
    }
  }
}

std::vector<std::vector<size_t>> StandardChunkings() {
  std::vector<std::vector<size_t>> c = {{}, {1}, {2}, {3}, {7}, {15}, {16}, {17}, {31}, {32},
                                        {33}, {63}, {64}, {65}, {127}, {128}, {129}, {4096},
                                        {1, 64, 3, 100, 17}};
  return c;
}

// A byte from a distribution dense in the characters the kernels treat
// specially.
char AdversarialByte(std::mt19937_64& rng, int density) {
  static constexpr char kSpecial[] = {'=', '=', '\r', '\n', '\r', '\n', '.', '.', 'y', 'J', '}'};
  if (static_cast<int>(rng() % 100) < density) return kSpecial[rng() % sizeof(kSpecial)];
  return static_cast<char>(rng());
}

// "=ybegin", then `body` bytes, then maybe =yend and the terminator.
std::string AdversarialArticle(std::mt19937_64& rng, size_t body, int density) {
  std::string s = "=ybegin line=128 size=100 name=adv\r\n";
  for (size_t i = 0; i < body; ++i) {
    char c = AdversarialByte(rng, density);
    // Keep most "=y" line starts out so the data runs long.
    if (c == 'y' && !s.empty() && s.back() == '=' && s.size() >= 2 && s[s.size() - 2] == '\n' &&
        rng() % 4 != 0) {
      c = 'x';
    }
    // Likewise most ".\r" / ".\n" terminators.
    if ((c == '\r' || c == '\n') && s.back() == '.' && s.size() >= 2 && s[s.size() - 2] == '\n' &&
        rng() % 4 != 0) {
      c = '.';
    }
    s.push_back(c);
  }
  switch (rng() % 3) {
    case 0:
      absl::StrAppend(&s, "\r\n=yend size=100 crc32=1234abcd\r\n.\r\n");
      break;
    case 1:
      absl::StrAppend(&s, "\r\n.\r\n");
      break;
    default:
      break;
  }
  return s;
}

TEST(DecodeKernels, RealisticArticlesAgree) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, size_t{5000}, size_t{100000}}) {
    const std::string data = testing::RandomBytes(size, size + 1);
    EncodeOptions o;
    o.name = "real";
    o.part = 1;
    ExpectAllKernelsAgree(testing::NntpArticle(data, o), StandardChunkings(),
                          absl::StrCat("size ", size));
  }
}

TEST(DecodeKernels, RandomAdversarialInputsAgree) {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 300; ++iter) {
    const int density = static_cast<int>(rng() % 60);
    const std::string in = AdversarialArticle(rng, rng() % 700, density);
    std::vector<std::vector<size_t>> chunkings = {{}, {1}};
    for (int j = 0; j < 4; ++j) chunkings.push_back({1 + rng() % 80, 1 + rng() % 80});
    ExpectAllKernelsAgree(in, chunkings, absl::StrCat("iteration ", iter, " density ", density));
  }
}

// Splits the input at every position: '=' at a chunk end, "\r\n.." and
// "\r\n=y" across boundaries, truncated escapes.
TEST(DecodeKernels, EverySplitPointAgrees) {
  const std::vector<std::string> inputs = {
      // dense escapes, dot-stuffing, empty lines, bare LF, "==" runs
      std::string("=ybegin line=128 size=9 name=s\r\n") + "ab=}cd=J\r\n..x.\r\n\r\n..\r\n" +
          "=\r\n=\n.a=y\n\n==\r\n===q\r\n.=ab\r\n" + std::string(70, 'k') + "=" +
          std::string(63, 'm') + "\r\n.." + std::string(64, 'n') + "\r\n=yend size=9\r\n.\r\n",
      // a data section ended by the NNTP terminator
      std::string("junk\r\n=ybegin size=1 name=t\r\n") + std::string(100, 'q') + "=\r\n.\r\nafter",
      // "=ypart" then data; "=y" line start inside the first vector
      "=ybegin part=1 size=5 name=p\r\n=ypart begin=1 end=5\r\nabcde\r\n=yend size=5\r\n.\r\n",
  };
  for (const std::string& in : inputs) {
    for (Mode mode : kModes) {
      const DecodeOutcome want = Decode(in, Kernel::kScalar, mode);
      for (Kernel k : testing::SupportedKernels()) {
        for (size_t split = 1; split < in.size(); ++split) {
          const DecodeOutcome got = Decode(in, k, mode, {split, in.size()});
          ASSERT_EQ(Diff(want, got), "") << KernelName(k) << " split " << split;
        }
      }
    }
  }
}

// Drives the raw kernel functions: every line state at every offset.
TEST(DecodeKernels, KernelsAgreeFromEveryStartState) {
  using internal::KernelResult;
  using internal::LineState;
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string in(rng() % 300, '\0');
    const int density = static_cast<int>(rng() % 50);
    for (char& c : in) c = AdversarialByte(rng, density);
    const LineState start = static_cast<LineState>(rng() % 5);
    for (bool nntp : {true, false}) {
      if (!nntp && start == LineState::kLineStartDot) continue;
      std::string want_out(in.size() + 64, '\0');
      LineState want_state = start;
      const KernelResult want =
          internal::GetKernel(Kernel::kScalar, nntp)(reinterpret_cast<const uint8_t*>(in.data()),
                                                     in.size(),
                                                     reinterpret_cast<uint8_t*>(want_out.data()),
                                                     &want_state);
      for (Kernel k : testing::SupportedKernels()) {
        std::string got_out(in.size() + 64, '\0');
        LineState got_state = start;
        const KernelResult got = internal::GetKernel(k, nntp)(
            reinterpret_cast<const uint8_t*>(in.data()), in.size(),
            reinterpret_cast<uint8_t*>(got_out.data()), &got_state);
        ASSERT_EQ(got.consumed, want.consumed) << KernelName(k) << " iter " << iter;
        ASSERT_EQ(got.produced, want.produced) << KernelName(k) << " iter " << iter;
        ASSERT_EQ(got.stop, want.stop) << KernelName(k) << " iter " << iter;
        ASSERT_EQ(got_out.substr(0, got.produced), want_out.substr(0, want.produced))
            << KernelName(k) << " iter " << iter;
        if (got.stop == internal::Stop::kNone) {
          ASSERT_EQ(got_state, want_state) << KernelName(k) << " iter " << iter;
        }
      }
    }
  }
}

}  // namespace
}  // namespace nzbmesh::yenc
