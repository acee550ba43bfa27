#include "las/proc_maps.h"

#include <gtest/gtest.h>

namespace cloister::las {
namespace {

TEST(ProcMapsTest, ParsesAFileMapping) {
  auto e = ParseMapsLine(
      "7f1c2a400000-7f1c2a428000 r--p 00001000 fd:01 1835043                    /usr/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->start, 0x7f1c2a400000u);
  EXPECT_EQ(e->end, 0x7f1c2a428000u);
  EXPECT_EQ(e->perms, "r--p");
  EXPECT_EQ(e->offset, 0x1000u);
  EXPECT_EQ(e->dev_major, 0xfdu);
  EXPECT_EQ(e->dev_minor, 0x01u);
  EXPECT_EQ(e->inode, 1835043u);
  EXPECT_EQ(e->path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_FALSE(e->deleted);
}

TEST(ProcMapsTest, KeepsSpacesInsideThePath) {
  auto e = ParseMapsLine("00400000-00452000 r-xp 00000000 08:02 173521      /opt/my app/lib  cloister.so");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->path, "/opt/my app/lib  cloister.so");
  EXPECT_EQ(e->dev_major, 8u);
  EXPECT_EQ(e->dev_minor, 2u);
}

TEST(ProcMapsTest, MarksDeletedFiles) {
  auto e = ParseMapsLine("7f00-8f00 r-xp 00000000 103:05 42 /usr/lib/libcloister-runtime.so (deleted)");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->deleted);
  EXPECT_EQ(e->path, "/usr/lib/libcloister-runtime.so");
  EXPECT_EQ(e->dev_major, 0x103u);
  EXPECT_EQ(e->dev_minor, 5u);
  // A name that is nothing but the suffix is a name, not a marker.
  auto odd = ParseMapsLine("7f00-8f00 r-xp 00000000 00:05 42  (deleted)");
  ASSERT_TRUE(odd);
  EXPECT_FALSE(odd->deleted);
}

TEST(ProcMapsTest, ParsesAnonymousAndPseudoMappings) {
  auto anon = ParseMapsLine("7ffd4a1c5000-7ffd4a1c7000 rw-p 00000000 00:00 0");
  ASSERT_TRUE(anon);
  EXPECT_EQ(anon->inode, 0u);
  EXPECT_EQ(anon->path, "");
  auto padded = ParseMapsLine("7ffd4a1c5000-7ffd4a1c7000 rw-p 00000000 00:00 0 ");
  ASSERT_TRUE(padded);
  EXPECT_EQ(padded->path, "");
  auto stack = ParseMapsLine("7ffd4a1a4000-7ffd4a1c5000 rw-p 00000000 00:00 0                          [stack]");
  ASSERT_TRUE(stack);
  EXPECT_EQ(stack->path, "[stack]");
}

TEST(ProcMapsTest, RefusesMalformedLines) {
  EXPECT_FALSE(ParseMapsLine(""));
  EXPECT_FALSE(ParseMapsLine("garbage"));
  EXPECT_FALSE(ParseMapsLine("7f00 r-xp 00000000 08:02 1 /x"));            // no range
  EXPECT_FALSE(ParseMapsLine("8f00-7f00 r-xp 00000000 08:02 1 /x"));       // end before start
  EXPECT_FALSE(ParseMapsLine("7f00-8f00 r-xpz 00000000 08:02 1 /x"));      // perms
  EXPECT_FALSE(ParseMapsLine("7f00-8f00 r-xp 0000000g 08:02 1 /x"));       // offset
  EXPECT_FALSE(ParseMapsLine("7f00-8f00 r-xp 00000000 0802 1 /x"));        // device
  EXPECT_FALSE(ParseMapsLine("7f00-8f00 r-xp 00000000 08:02 1a /x"));      // inode is decimal
  EXPECT_FALSE(ParseMapsLine("7f00-8f00 r-xp 00000000 08:02 -1 /x"));      // negative inode
  EXPECT_FALSE(ParseMapsLine("7f00-8f00 r-xp 00000000 08:02"));            // no inode
  EXPECT_FALSE(ParseMapsLine("zz-8f00 r-xp 00000000 08:02 1 /x"));
}

TEST(ProcMapsTest, FindsTheRuntimeByItsFileName) {
  const char* maps =
      "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 100 /usr/bin/python3\n"
      "7f0000000000-7f0000001000 r--p 00000000 fd:01 200 /usr/lib/libcloister-runtime.so\n"
      "7f0000001000-7f0000005000 r-xp 00001000 fd:01 200 /usr/lib/libcloister-runtime.so\n"
      "7f0000006000-7f0000007000 r--p 00000000 fd:01 300 /usr/lib/not-libcloister-runtime.so\n"
      "7f0000008000-7f0000009000 r--p 00000000 fd:01 400 /libcloister-runtime-dir/libc.so\n"
      "7f000000a000-7f000000b000 rw-p 00000000 00:00 0\n"
      "7f000000c000-7f000000d000 r--p 00000000 00:05 500 /memfd:libcloister-runtime (deleted)\n"
      "7f000000e000-7f000000f000 r--p 00000000 fd:01 600 /tmp/a b/libcloister-runtime-2.so (deleted)\n"
      "this line is not a mapping\n"
      "7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [libcloister-runtime]";
  auto found = FindMappings(maps, kRuntimeBasenamePrefix);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].inode, 200u);
  EXPECT_EQ(found[0].perms, "r--p");
  EXPECT_EQ(found[1].inode, 200u);
  EXPECT_EQ(found[1].perms, "r-xp");
  EXPECT_EQ(found[2].path, "/tmp/a b/libcloister-runtime-2.so");
  EXPECT_TRUE(found[2].deleted);

  EXPECT_TRUE(FindMappings("", kRuntimeBasenamePrefix).empty());
  EXPECT_TRUE(FindMappings("55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 100 /usr/bin/python3",
                           kRuntimeBasenamePrefix)
                  .empty());
}

}  // namespace
}  // namespace cloister::las
