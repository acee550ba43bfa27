// The YAML adapter of the policy module: the only code that touches
// yaml-cpp. It turns a document into a small immutable tree with the
// position of every node, and it is where yaml-cpp's exceptions stop.
//
// The tree is built from yaml-cpp's event parser rather than from
// YAML::Node so that the limits a hostile document could abuse are
// enforced here, while parsing: nesting depth, node count, and the size a
// document reaches once its aliases are expanded (an "alias bomb" of a
// few hundred bytes can otherwise stand for billions of nodes). An alias
// is represented by sharing the anchored node, so the tree never grows
// beyond the document; the limits bound the *expanded* size, which is
// what walking the tree costs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace cloister::policy::yaml {

// Limits for untrusted documents (documented in docs/policy.md).
inline constexpr int kMaxNesting = 64;                  // maps and lists inside each other
inline constexpr uint64_t kMaxNodes = 100000;           // nodes, aliases expanded
inline constexpr uint64_t kMaxExpandedBytes = 4 << 20;  // scalar bytes, aliases expanded

enum class NodeKind { kNull, kScalar, kSequence, kMap };

struct Node {
  NodeKind kind = NodeKind::kNull;
  // Byte offset of the node in the original text (at its anchor or tag if
  // it has one) and the same position as 1-based line and column (the
  // column counts characters, not bytes).
  size_t offset = 0;
  int line = 0;
  int column = 0;
  // Scalars: the value after YAML unescaping and folding. `plain` is true
  // for a scalar written without quotes or block indicator and without a
  // tag; `tag` is empty unless one was written ("!!str" is spelled
  // "tag:yaml.org,2002:str" here).
  std::string value;
  bool plain = false;
  std::string tag;
  // Sequences: the items. Maps: keys and values alternating (key 0,
  // value 0, key 1, ...), in document order, duplicates included. An alias
  // appears as the anchored node itself.
  std::vector<const Node*> children;

  bool IsScalar() const { return kind == NodeKind::kScalar; }
  bool IsMap() const { return kind == NodeKind::kMap; }
  bool IsSequence() const { return kind == NodeKind::kSequence; }
  bool IsNull() const { return kind == NodeKind::kNull; }
  size_t MapSize() const { return children.size() / 2; }
  const Node* Key(size_t i) const { return children[2 * i]; }
  const Node* Value(size_t i) const { return children[2 * i + 1]; }
  // The value of the first entry whose key is the scalar `key`, or nullptr.
  const Node* Find(std::string_view key) const;

  // Filled while building; used for the limits.
  bool complete = false;
  uint64_t expanded_nodes = 0;
  uint64_t expanded_bytes = 0;
};

class TreeBuilder;  // yaml_tree.cc: receives yaml-cpp's events

// A parsed document. When `error` is set there is no root: the text is not
// YAML, holds more than one document, or exceeds a limit.
class Tree {
 public:
  // Never throws. The tree copies what it keeps of `text`. The size limit
  // on `text` is the caller's (see kMaxDocumentSize).
  static std::unique_ptr<Tree> Parse(std::string_view text);
  ~Tree();
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  const Node* root() const { return root_; }
  const std::optional<PolicyError>& error() const { return error_; }

  // Position of a byte offset of the text as 1-based line and column.
  void Position(size_t offset, int* line, int* column) const;

 private:
  friend class TreeBuilder;
  Tree() = default;
  Node* NewNode();

  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<size_t> line_starts_;
  // [i]: how many UTF-8 continuation bytes precede offset i (to count
  // columns in characters in constant time); empty for ASCII text.
  std::vector<uint32_t> continuations_before_;
  const Node* root_ = nullptr;
  std::optional<PolicyError> error_;
};

// Helpers to find where a scalar's text ends, for the builder and for
// RedactedText. SkipProperties steps over the anchor (&a) and tag (!t) a
// node may start with and the blanks, line breaks and comments after
// them. QuotedEnd takes the offset of an opening ' or " and returns the
// offset just past the closing one, or nullopt if there is none.
size_t SkipProperties(std::string_view text, size_t offset);
std::optional<size_t> QuotedEnd(std::string_view text, size_t offset);

// Writes `root` as YAML with yaml-cpp's emitter, every node of `redact`
// replaced by the plain scalar "<redacted>". Comments and layout are lost;
// RedactedText uses it only when it cannot redact a document in place.
// Returns an empty string if the emitter fails.
std::string EmitRedacted(const Node* root, const std::set<const Node*>& redact);

}  // namespace cloister::policy::yaml
