// A deterministic driver for LLVMFuzzerTestOneInput, linked when the build is
// not a libFuzzer build. Usage: <fuzzer> [runs] [files...]
// Replays every file given, then feeds `runs` inputs: random bytes, and
// mutations (bit flips, truncations, splices) of earlier inputs, with a fixed
// seed so a failure reproduces. A crash or sanitizer report fails the test.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  long runs = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 10000;
  std::vector<std::string> pool;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    pool.push_back(std::move(s));
  }
  std::mt19937_64 rng(0x6e7a626d657368ULL);
  for (long r = 0; r < runs; ++r) {
    std::string input;
    if (!pool.empty() && rng() % 2 == 0) {
      input = pool[rng() % pool.size()];
      const int edits = 1 + rng() % 8;
      for (int e = 0; e < edits && !input.empty(); ++e) {
        switch (rng() % 4) {
          case 0: input[rng() % input.size()] ^= static_cast<char>(1u << (rng() % 8)); break;
          case 1: input.resize(rng() % input.size()); break;
          case 2: input.insert(rng() % (input.size() + 1), 1, static_cast<char>(rng())); break;
          default: {
            const std::string& other = pool[rng() % pool.size()];
            input += other.substr(0, rng() % (other.size() + 1));
          }
        }
      }
    } else {
      input.resize(rng() % 4096);
      for (char& c : input) c = static_cast<char>(rng());
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    if (pool.size() < 256) pool.push_back(input);
  }
  std::printf("fuzz driver: %ld runs, no crash\n", runs);
  return 0;
}
