// What the image module's libarchive users share: owners for read and
// write handles, and the one way an archive error becomes a Status.
#pragma once

#include <archive.h>

#include <memory>
#include <string>

#include "cloister/status.h"

namespace cloister::image {

struct ArchiveReadDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};

inline Status ArchiveError(struct archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return IoError(what + ": " + (msg ? msg : "unknown archive error"));
}

}  // namespace cloister::image
