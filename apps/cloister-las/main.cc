#include "las/las_main.h"

int main(int argc, char** argv) { return cloister::las::LasMain(argc, argv); }
