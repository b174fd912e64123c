// ewe_cluster: DBSCAN and k-means from the command line (see cli.hpp for the usage).
#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) { return ewe_cluster::run(argc, argv, std::cout, std::cerr); }
