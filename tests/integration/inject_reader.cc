// A program for the attestation end-to-end test, run unmodified under the
// runtime: it reads an injected file (argv[1]) in every way a C or C++
// program might and prints one word per way, so the test can see that each
// one sees the same bytes and that writing is refused.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: inject_reader PATH\n");
    return 2;
  }
  const char* path = argv[1];
  std::string by_read, by_mmap, by_fopen, by_ifstream;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) by_read.append(buf, static_cast<size_t>(n));
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
      void* m = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED) {
        by_mmap.assign(static_cast<const char*>(m), static_cast<size_t>(st.st_size));
        munmap(m, static_cast<size_t>(st.st_size));
      }
    }
    close(fd);
  }
  if (FILE* f = std::fopen(path, "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) by_fopen.append(buf, n);
    std::fclose(f);
  }
  std::ifstream in(path, std::ios::binary);
  if (in) by_ifstream.assign(std::istreambuf_iterator<char>(in), {});
  struct stat st;
  bool stat_ok = stat(path, &st) == 0 && static_cast<size_t>(st.st_size) == by_read.size() && S_ISREG(st.st_mode);
  bool access_ok = access(path, R_OK) == 0 && access(path, W_OK) != 0;
  int w = open(path, O_WRONLY);
  bool write_refused = w < 0 && errno == EACCES;
  if (w >= 0) close(w);
  bool same = !by_read.empty() && by_read == by_mmap && by_read == by_fopen && by_read == by_ifstream;
  std::printf("bytes=%zu read=%s mmap=%s fopen=%s ifstream=%s stat=%s access=%s write-refused=%s\n", by_read.size(),
              by_read.empty() ? "no" : "yes", by_mmap == by_read ? "same" : "differs",
              by_fopen == by_read ? "same" : "differs", by_ifstream == by_read ? "same" : "differs",
              stat_ok ? "ok" : "wrong", access_ok ? "ok" : "wrong", write_refused ? "yes" : "no");
  return same && stat_ok && access_ok && write_refused ? 0 : 1;
}
