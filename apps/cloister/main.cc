#include "cli/cli.h"

int main(int argc, char** argv) { return cloister::cli::Main(argc, argv); }
