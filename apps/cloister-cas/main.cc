#include "cas/cas_main.h"

int main(int argc, char** argv) { return cloister::cas::CasMain(argc, argv); }
