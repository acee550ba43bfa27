#include "policy/yaml_tree.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <exception>
#include <sstream>
#include <unordered_map>

#include "base/secret.h"

namespace cloister::policy::yaml {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

// Checks what yaml-cpp would otherwise accept or mangle silently: the text
// must be UTF-8 (yaml-cpp guesses UTF-16/32 from the first bytes, which
// would make every offset wrong) without control characters other than
// tab and line breaks (YAML forbids them unescaped; a NUL in particular
// could cut a value short in some consumer). Returns the offset of the
// first bad byte and a reason.
std::optional<std::pair<size_t, std::string>> CheckEncoding(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
        char code[8];
        snprintf(code, sizeof(code), "U+%04X", c);
        return std::make_pair(
            i, "control character " + std::string(code) + " is not allowed (escape it in a double-quoted string)");
      }
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07;
    } else {
      return std::make_pair(i, std::string("not UTF-8"));
    }
    if (i + n >= s.size()) return std::make_pair(i, std::string("not UTF-8"));
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return std::make_pair(i, std::string("not UTF-8"));
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return std::make_pair(i, std::string("not UTF-8"));
    }
    i += n + 1;
  }
  return std::nullopt;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsBreak(char c) { return c == '\n' || c == '\r'; }

}  // namespace

// Receives yaml-cpp's events and builds the tree, enforcing the limits.
// After the first failure every further event is ignored: the tree is
// discarded anyway, and ignoring is cheaper and simpler than unwinding
// yaml-cpp with an exception.
class TreeBuilder : public YAML::EventHandler {
 public:
  TreeBuilder(Tree& tree, std::string_view text, size_t bom) : tree_(tree), text_(text), bom_(bom) {}

  bool failed() const { return failed_; }
  const Node* root() const { return root_; }

  void Fail(size_t offset, std::string message) {
    if (failed_) return;
    failed_ = true;
    PolicyError e;
    tree_.Position(offset, &e.line, &e.column);
    e.message = std::move(message);
    tree_.error_ = std::move(e);
  }
  size_t Offset(const YAML::Mark& m) const {
    return m.is_null() || m.pos < 0 ? 0 : std::min(text_.size(), static_cast<size_t>(m.pos) + bom_);
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) Fail(Offset(mark), "only one YAML document is allowed (found a second one)");
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (failed_) return;
    // yaml-cpp marks an empty value ("key:" and nothing) at the token that
    // follows it, often on a later line; point at the key instead.
    size_t offset = Offset(mark);
    std::string_view at = text_.substr(offset);
    bool written = at.starts_with("~") || at.starts_with("null") || at.starts_with("Null") || at.starts_with("NULL") ||
                   at.starts_with("&") || at.starts_with("!");
    if (!written) offset = last_offset_;
    Node* n = New(offset, NodeKind::kNull);
    n->complete = true;
    n->expanded_nodes = 1;
    Register(anchor, n);
    Attach(n);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (failed_) return;
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) return Fail(Offset(mark), "alias of an unknown anchor");
    if (!it->second->complete) return Fail(Offset(mark), "an alias may not refer to a node that contains it");
    last_offset_ = Offset(mark);
    Attach(it->second);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (failed_) return;
    // yaml-cpp takes a quoted scalar that runs to the end of the text
    // as if it had been closed there; YAML does not.
    size_t start = SkipProperties(text_, Offset(mark));
    if (tag != "?" && start < text_.size() && (text_[start] == '"' || text_[start] == '\'') &&
        !QuotedEnd(text_, start)) {
      return Fail(start, "YAML syntax error: the quoted string is not closed");
    }
    Node* n = New(Offset(mark), NodeKind::kScalar);
    n->value = value;
    n->plain = tag == "?";
    if (tag != "?" && tag != "!") n->tag = tag;
    n->complete = true;
    n->expanded_nodes = 1;
    n->expanded_bytes = value.size();
    Register(anchor, n);
    Attach(n);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, tag, anchor, NodeKind::kSequence);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, tag, anchor, NodeKind::kMap);
  }
  void OnMapEnd() override { Close(); }

 private:
  Node* New(size_t offset, NodeKind kind) {
    Node* n = tree_.NewNode();
    n->kind = kind;
    n->offset = offset;
    tree_.Position(offset, &n->line, &n->column);
    last_offset_ = offset;
    return n;
  }
  void Register(YAML::anchor_t anchor, const Node* n) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = n;
  }
  void Open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, NodeKind kind) {
    if (failed_) return;
    if (static_cast<int>(stack_.size()) >= kMaxNesting) {
      return Fail(Offset(mark), "maps and lists are nested deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    Node* n = New(Offset(mark), kind);
    if (tag != "?" && tag != "!") n->tag = tag;
    n->expanded_nodes = 1;
    Register(anchor, n);
    stack_.push_back(n);
  }
  void Close() {
    if (failed_ || stack_.empty()) return;
    Node* n = stack_.back();
    stack_.pop_back();
    n->complete = true;
    Attach(n);
  }
  void Attach(const Node* n) {
    if (stack_.empty()) {
      root_ = n;
      return;
    }
    Node* parent = stack_.back();
    parent->children.push_back(n);
    parent->expanded_nodes = SaturatingAdd(parent->expanded_nodes, n->expanded_nodes);
    parent->expanded_bytes = SaturatingAdd(parent->expanded_bytes, n->expanded_bytes);
    if (parent->expanded_nodes > kMaxNodes) {
      Fail(n->offset,
           "the document has more than " + std::to_string(kMaxNodes) + " nodes once its aliases are expanded");
    } else if (parent->expanded_bytes > kMaxExpandedBytes) {
      Fail(n->offset, "the document's values exceed " + std::to_string(kMaxExpandedBytes) +
                          " bytes once its aliases are expanded");
    }
  }

  Tree& tree_;
  std::string_view text_;
  size_t bom_;
  bool failed_ = false;
  int documents_ = 0;
  size_t last_offset_ = 0;
  const Node* root_ = nullptr;
  std::vector<Node*> stack_;
  std::unordered_map<YAML::anchor_t, const Node*> anchors_;
};

namespace {

void Emit(YAML::Emitter& out, const Node* n, const std::set<const Node*>& redact) {
  if (redact.count(n) != 0) {
    out << "<redacted>";
    return;
  }
  switch (n->kind) {
    case NodeKind::kNull:
      out << YAML::Null;
      break;
    case NodeKind::kScalar:
      if (!n->tag.empty()) out << YAML::VerbatimTag(n->tag);
      if (n->plain) {
        out << n->value;
      } else {
        out << YAML::DoubleQuoted << n->value;
      }
      break;
    case NodeKind::kSequence:
      out << YAML::BeginSeq;
      for (const Node* c : n->children) Emit(out, c, redact);
      out << YAML::EndSeq;
      break;
    case NodeKind::kMap:
      out << YAML::BeginMap;
      for (size_t i = 0; i < n->MapSize(); ++i) {
        out << YAML::Key;
        Emit(out, n->Key(i), redact);
        out << YAML::Value;
        Emit(out, n->Value(i), redact);
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

size_t SkipProperties(std::string_view t, size_t i) {
  while (i < t.size() && (t[i] == '&' || t[i] == '!')) {
    while (i < t.size() && !IsBlank(t[i]) && !IsBreak(t[i])) ++i;
    while (i < t.size()) {
      if (IsBlank(t[i]) || IsBreak(t[i])) {
        ++i;
      } else if (t[i] == '#') {
        while (i < t.size() && !IsBreak(t[i])) ++i;
      } else {
        break;
      }
    }
  }
  return i;
}

std::optional<size_t> QuotedEnd(std::string_view t, size_t i) {
  const char quote = t[i];
  for (size_t j = i + 1; j < t.size(); ++j) {
    if (quote == '"' && t[j] == '\\') {
      ++j;  // an escape: the next character cannot close
    } else if (t[j] == quote) {
      if (quote == '\'' && j + 1 < t.size() && t[j + 1] == '\'') {
        ++j;  // '' stands for one quote
      } else {
        return j + 1;
      }
    }
  }
  return std::nullopt;
}

const Node* Node::Find(std::string_view key) const {
  if (kind != NodeKind::kMap) return nullptr;
  for (size_t i = 0; i < MapSize(); ++i) {
    if (Key(i)->IsScalar() && Key(i)->value == key) return Value(i);
  }
  return nullptr;
}

Tree::~Tree() {
  // Scalars may be secret values; do not leave them in freed memory.
  for (auto& n : nodes_) SecureZero(n->value.data(), n->value.size());
}

Node* Tree::NewNode() {
  nodes_.push_back(std::make_unique<Node>());
  return nodes_.back().get();
}

void Tree::Position(size_t offset, int* line, int* column) const {
  // line_starts_ is sorted and starts with 0.
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  size_t index = static_cast<size_t>(it - line_starts_.begin()) - 1;
  *line = static_cast<int>(index) + 1;
  // Columns count characters, as editors do: UTF-8 continuation bytes do
  // not count.
  size_t start = line_starts_[index];
  size_t bytes = offset - start;
  if (!continuations_before_.empty()) {
    size_t end = std::min(offset, continuations_before_.size() - 1);
    bytes -= continuations_before_[end] - continuations_before_[std::min(start, end)];
  }
  *column = static_cast<int>(bytes) + 1;
}

std::unique_ptr<Tree> Tree::Parse(std::string_view text) {
  std::unique_ptr<Tree> tree(new Tree());
  tree->line_starts_.push_back(0);
  bool any_multibyte = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n' || (c == '\r' && (i + 1 == text.size() || text[i + 1] != '\n'))) {
      tree->line_starts_.push_back(i + 1);
    }
    if (static_cast<unsigned char>(c) >= 0x80) any_multibyte = true;
  }
  if (any_multibyte) {
    tree->continuations_before_.resize(text.size() + 1);
    for (size_t i = 0; i < text.size(); ++i) {
      bool continuation = (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80;
      tree->continuations_before_[i + 1] = tree->continuations_before_[i] + (continuation ? 1 : 0);
    }
  }

  auto fail = [&](size_t offset, std::string message) {
    PolicyError e;
    tree->Position(offset, &e.line, &e.column);
    e.message = std::move(message);
    tree->error_ = std::move(e);
    return std::move(tree);
  };
  size_t bom = text.starts_with(kBom) ? kBom.size() : 0;
  if (auto bad = CheckEncoding(text.substr(bom))) return fail(bad->first + bom, bad->second);

  TreeBuilder builder(*tree, text, bom);
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    // One document; a second HandleNextDocument makes the builder fail if
    // another follows.
    if (parser.HandleNextDocument(builder) && !builder.failed()) parser.HandleNextDocument(builder);
  } catch (const YAML::Exception& e) {
    if (!builder.failed()) {
      std::string msg = e.msg == "bad file" ? "nested too deeply" : e.msg;
      builder.Fail(builder.Offset(e.mark), "YAML syntax error: " + msg);
    }
  } catch (const std::exception& e) {
    builder.Fail(0, std::string("YAML parser failed: ") + e.what());
  } catch (...) {
    builder.Fail(0, "YAML parser failed");
  }
  if (tree->error_) return tree;
  if (builder.root() == nullptr) return fail(0, "the document is empty");
  tree->root_ = builder.root();
  return tree;
}

std::string EmitRedacted(const Node* root, const std::set<const Node*>& redact) {
  try {
    YAML::Emitter out;
    Emit(out, root, redact);
    if (!out.good()) return std::string();
    return std::string(out.c_str(), out.size()) + "\n";
  } catch (...) {
    return std::string();
  }
}

}  // namespace cloister::policy::yaml
