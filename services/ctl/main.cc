// nzbmeshctl — see `nzbmeshctl --help`.
#include <iostream>

#include "services/ctl/ctl.h"

int main(int argc, char** argv) {
  return nzbmesh::ctl::RunCtl(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
