// RedactedText: the stored document as `show` prints it, with explicit
// secret values and volume keys cut out.
//
// The aim is to keep the author's text byte for byte (comments, order,
// quoting) and only replace the secret scalars. yaml-cpp reports where a
// node starts but not where it ends, so the end is found here from the
// scalar's style: the closing quote of a quoted scalar, the indentation of
// a block scalar, and for a plain scalar by matching the text against the
// parsed value (line folding included). Because getting that wrong would
// leak, the result is parsed again and must give the same tree with
// "<redacted>" in place of each secret; if it does not, the document is
// re-emitted from the parsed tree instead.
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "policy/yaml_tree.h"

namespace cloister::policy {
namespace {

using yaml::Node;

constexpr std::string_view kRedacted = "<redacted>";
constexpr size_t kMinScrubLength = 6;
constexpr size_t kScrubBudget = size_t{256} << 20;  // bytes searched

// The scalars to cut out, and for those that are the value of a block
// mapping entry, the indentation of that mapping (needed to find the end
// of a block scalar with an explicit indentation indicator).
struct Targets {
  std::set<const Node*> nodes;
  std::map<const Node*, size_t> parent_indent;
};

// Every scalar under `n` (keys included: for a well-formed document the
// secret is one scalar, but a malformed one may nest it).
void CollectScalars(const Node* n, std::set<const Node*>& out, std::set<const Node*>& seen) {
  if (!seen.insert(n).second) return;
  if (n->IsScalar()) {
    out.insert(n);
    return;
  }
  for (const Node* c : n->children) CollectScalars(c, out, seen);
}

// secrets[*].value and volumes[*].key, wherever a document repeats them.
Targets SecretScalars(const Node* root) {
  Targets t;
  std::set<const Node*>& out = t.nodes;
  std::set<const Node*> seen;
  if (!root->IsMap()) return t;
  for (size_t i = 0; i < root->MapSize(); ++i) {
    const Node* key = root->Key(i);
    const Node* list = root->Value(i);
    if (!key->IsScalar() || !list->IsSequence()) continue;
    std::string_view field;
    if (key->value == "secrets") field = "value";
    if (key->value == "volumes") field = "key";
    if (field.empty()) continue;
    for (const Node* item : list->children) {
      if (!item->IsMap()) continue;
      for (size_t k = 0; k < item->MapSize(); ++k) {
        const Node* field_key = item->Key(k);
        const Node* value = item->Value(k);
        if (!field_key->IsScalar() || field_key->value != field) continue;
        CollectScalars(value, out, seen);
        // All keys of a block mapping start in its indentation column. Only
        // for a value written right there: an alias's node is written
        // elsewhere, under another mapping.
        if (value->line == field_key->line && value->offset > field_key->offset) {
          t.parent_indent.emplace(value, static_cast<size_t>(field_key->column - 1));
        }
      }
    }
  }
  return t;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsBreak(char c) { return c == '\n' || c == '\r'; }

size_t LineEnd(std::string_view t, size_t i) {
  while (i < t.size() && !IsBreak(t[i])) ++i;
  return i;
}
size_t NextLine(std::string_view t, size_t i) {
  i = LineEnd(t, i);
  if (i < t.size() && t[i] == '\r') ++i;
  if (i < t.size() && t[i] == '\n') ++i;
  return i;
}

// A block scalar ('|' or '>') at `i`: its header line and the content
// lines after it. When the indentation of the mapping it is a value of is
// known (`parent_indent`), every following line indented more than that
// mapping is taken: that is all of the content, whatever the indentation
// indicator says, plus any comment lines indented as deep (hiding those
// too is harmless). Otherwise the content is found as YAML's
// auto-detection finds it (the lines indented at least as much as the
// first non-blank one); an explicit indicator ("|2") then makes the
// caller fall back.
std::optional<size_t> BlockEnd(std::string_view t, size_t i, const Node* n, std::optional<size_t> parent_indent) {
  size_t j = i + 1;
  for (int k = 0; k < 2 && j < t.size() && (t[j] == '+' || t[j] == '-' || (t[j] >= '1' && t[j] <= '9')); ++k, ++j) {
    if (t[j] >= '1' && t[j] <= '9' && !parent_indent) return std::nullopt;
  }
  size_t end = LineEnd(t, j);
  if (!parent_indent && n->value.find_first_not_of("\r\n") == std::string::npos) return end;  // no content
  size_t indent = parent_indent ? *parent_indent + 1 : 0;  // a line indented less ends the block
  for (size_t pos = NextLine(t, end); pos < t.size(); pos = NextLine(t, pos)) {
    size_t k = pos;
    while (k < t.size() && t[k] == ' ') ++k;
    size_t eol = LineEnd(t, k);
    if (std::all_of(t.begin() + static_cast<std::ptrdiff_t>(k), t.begin() + static_cast<std::ptrdiff_t>(eol),
                    IsBlank)) {
      continue;  // blank lines may be less indented
    }
    if (indent == 0) indent = k - pos;
    if (indent == 0 || k - pos < indent) break;
    end = eol;
  }
  return end;
}

// A plain scalar at `i`: the text must spell `value`, where a run of
// blanks and line breaks holding n breaks folds to one space (n = 1) or
// to n - 1 newlines.
std::optional<size_t> PlainEnd(std::string_view t, size_t i, std::string_view value) {
  size_t j = 0;
  while (j < value.size()) {
    if (i >= t.size()) return std::nullopt;
    if (IsBlank(t[i]) || IsBreak(t[i])) {
      size_t k = i, breaks = 0;
      while (k < t.size() && (IsBlank(t[k]) || IsBreak(t[k]))) {
        if (t[k] == '\n' || (t[k] == '\r' && (k + 1 == t.size() || t[k + 1] != '\n'))) ++breaks;
        ++k;
      }
      if (breaks > 0) {
        std::string folded = breaks == 1 ? " " : std::string(breaks - 1, '\n');
        if (value.substr(j, folded.size()) != folded) return std::nullopt;
        j += folded.size();
        i = k;
        continue;
      }
    }
    if (t[i] != value[j]) return std::nullopt;
    ++i, ++j;
  }
  return i;
}

struct Span {
  size_t begin, end;
};

std::optional<Span> ScalarSpan(std::string_view t, const Node* n, std::optional<size_t> parent_indent) {
  size_t i = yaml::SkipProperties(t, n->offset);
  if (i >= t.size()) return std::nullopt;
  std::optional<size_t> end;
  switch (t[i]) {
    case '"':
    case '\'':
      end = yaml::QuotedEnd(t, i);
      break;
    case '|':
    case '>':
      end = BlockEnd(t, i, n, parent_indent);
      break;
    default:
      end = PlainEnd(t, i, n->value);
      break;
  }
  if (!end) return std::nullopt;
  return Span{i, *end};
}

// Whether `b` (parsed from the redacted text) is `a` with every node of
// `redact` replaced by the scalar "<redacted>".
bool SameButRedacted(const Node* a, const Node* b, const std::set<const Node*>& redact) {
  if (redact.count(a) != 0) return b->IsScalar() && b->value == kRedacted;
  if (a->kind != b->kind || a->children.size() != b->children.size()) return false;
  if (a->IsScalar()) return a->value == b->value && a->plain == b->plain && a->tag == b->tag;
  for (size_t i = 0; i < a->children.size(); ++i) {
    if (!SameButRedacted(a->children[i], b->children[i], redact)) return false;
  }
  return true;
}

std::optional<std::string> RedactInPlace(std::string_view text, const yaml::Tree& tree, const Targets& targets) {
  const std::set<const Node*>& redact = targets.nodes;
  std::vector<Span> spans;
  for (const Node* n : redact) {
    auto it = targets.parent_indent.find(n);
    auto span = ScalarSpan(text, n, it == targets.parent_indent.end() ? std::nullopt : std::optional(it->second));
    if (!span) return std::nullopt;
    spans.push_back(*span);
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  std::string out;
  size_t pos = 0;
  for (const Span& s : spans) {
    if (s.begin < pos) return std::nullopt;  // overlapping: something is off
    out.append(text.substr(pos, s.begin - pos));
    out.append(kRedacted);
    pos = s.end;
  }
  out.append(text.substr(pos));
  auto check = yaml::Tree::Parse(out);
  if (check->error() || !SameButRedacted(tree.root(), check->root(), redact)) return std::nullopt;
  return out;
}

// Replaces further copies of the values. Each value costs a search of
// the whole text; a document with thousands of explicit values (which no
// honest author writes, but an upload may) would make that quadratic, so
// the searching stops after a fixed budget, longest values first.
void Scrub(std::string& out, const std::set<const Node*>& redact) {
  std::set<std::string_view> distinct;
  for (const Node* n : redact) {
    std::string_view v = n->value;
    if (v.size() < kMinScrubLength) continue;
    distinct.insert(v);
    // Each line of a multi-line value, too: a line left behind in place
    // would be one of those.
    for (size_t start = 0; v.find('\n') != std::string_view::npos && start < v.size();) {
      size_t stop = std::min(v.find('\n', start), v.size());
      std::string_view line = v.substr(start, stop - start);
      size_t first = line.find_first_not_of(" \t\r");
      size_t last = line.find_last_not_of(" \t\r");
      if (first != std::string_view::npos && last - first + 1 >= kMinScrubLength) {
        distinct.insert(line.substr(first, last - first + 1));
      }
      start = stop + 1;
    }
  }
  std::vector<std::string_view> values(distinct.begin(), distinct.end());
  // Longest first, so that a value inside a longer one does not break it up.
  std::sort(values.begin(), values.end(), [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  size_t budget = kScrubBudget;
  for (std::string_view v : values) {
    if (budget < out.size()) break;
    budget -= out.size();
    for (size_t at = out.find(v); at != std::string::npos; at = out.find(v, at + kRedacted.size())) {
      out.replace(at, v.size(), kRedacted);
    }
  }
}

}  // namespace

std::string RedactedText(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxDocumentSize) return "# <not shown: the document is larger than the limit>\n";
  std::unique_ptr<yaml::Tree> tree = yaml::Tree::Parse(yaml_text);
  if (tree->error()) return "# <not shown: the text is not a YAML document this version can read>\n";
  Targets targets = SecretScalars(tree->root());
  const std::set<const Node*>& redact = targets.nodes;
  if (redact.empty()) return std::string(yaml_text);

  std::string out;
  if (auto in_place = RedactInPlace(yaml_text, *tree, targets)) {
    out = std::move(*in_place);
  } else {
    std::string emitted = yaml::EmitRedacted(tree->root(), redact);
    if (emitted.empty()) return "# <not shown: the document could not be redacted>\n";
    out = "# Re-formatted to hide secret values; the original comments and layout are not shown.\n" + emitted;
  }
  Scrub(out, redact);
  return out;
}

}  // namespace cloister::policy
