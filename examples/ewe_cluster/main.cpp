// ewe_cluster: DBSCAN and k-means from the command line (usage in
// include/ewe_cluster/ewe_cluster.hpp; the tool is the ewe_cluster_cli library).
#include <iostream>

#include "ewe_cluster/ewe_cluster.hpp"

int main(int argc, char** argv) { return ewe_cluster::run(argc, argv, std::cout, std::cerr); }
