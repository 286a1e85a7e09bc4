// Fuzzes ParseNzb (and the subject/name helpers it drives). Small caps keep
// each run cheap; the parser must never crash, hang or leak whatever it gets.
#include <cstddef>
#include <cstdint>

#include "services/importer/analysis/filenames.h"
#include "services/importer/analysis/nzb_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nzbmesh::importer;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  NzbParseOptions options;
  options.max_nzb_bytes = 1 << 20;
  options.max_files = 100;
  options.max_segments_per_file = 1000;
  options.max_total_segments = 5000;
  // Raw input, and the input wrapped in a minimal NZB so that the random
  // driver reaches the file/segment code, not just the XML error path.
  for (const std::string& xml :
       {std::string(input),
        "<nzb><head><meta type=\"password\">p</meta></head><file subject=\"" + std::string(input) +
            "\"><groups><group>g</group></groups><segments><segment bytes=\"1\" number=\"1\">" +
            std::string(input) + "@x</segment></segments></file></nzb>"}) {
    absl::StatusOr<Nzb> nzb = ParseNzb(xml, options);
    if (nzb.ok()) {
      UniqueNamer namer;
      for (const NzbFile& f : nzb->files) {
        if (f.filename_from_subject) {
          const std::string name = namer.Claim(SanitizeFilename(*f.filename_from_subject));
          if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') __builtin_trap();
          (void)LooksObfuscated(name);
          (void)ParseVolumeName(name);
        }
      }
    }
  }
  const std::string path = SanitizePath(input);
  if (path.empty() || path.find("..") == 0) __builtin_trap();
  return 0;
}
