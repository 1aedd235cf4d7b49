#include "spec/pipeline_layout.hpp"

#include <cctype>

#include "spec/error.hpp"

namespace xpu {

int PipelineLayout::layers() const {
  int n = 0;
  for (const auto& c : chunks) n += c.layers;
  return n;
}

int PipelineLayout::mtp() const {
  int n = 0;
  for (const auto& c : chunks) n += c.mtp;
  return n;
}

namespace {

// The expanded symbols may not pass this: a typo of *100000 must not allocate gigabytes.
constexpr std::size_t kMaxSymbols = 100000;
// Nesting deeper than this is a typo (the parser recurses once per '(').
constexpr int kMaxDepth = 100;

class Parser {
 public:
  Parser(const std::string& text, const std::string& where) : s_(text), where_(where) {}

  std::string expand() {
    std::string out = sequence();
    if (i_ < s_.size()) fail("unexpected ')'");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(where_, "'" + s_ + "': " + what + " at character " + std::to_string(i_ + 1) +
                                 " (stages split by '|'; E, t, m, L; x*N or (...)*N)");
  }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ',' || std::isspace(static_cast<unsigned char>(s_[i_])))) ++i_;
  }
  // A repeat count after '*': a whole number 1 to 10000.
  long count() {
    ++i_;  // '*'
    skip();
    const std::size_t start = i_;
    long n = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])) && n <= 10000) n = n * 10 + (s_[i_++] - '0');
    if (i_ == start) fail("'*' needs a count");
    if (n < 1 || n > 10000) fail("a repeat count must be 1 to 10000");
    return n;
  }
  void append(std::string& out, const std::string& piece, long times) {
    if (out.size() + piece.size() * static_cast<std::size_t>(times) > kMaxSymbols)
      fail("the layout expands to more than " + std::to_string(kMaxSymbols) + " symbols");
    for (long k = 0; k < times; ++k) out += piece;
  }
  std::string sequence() {
    std::string out;
    for (skip(); i_ < s_.size() && s_[i_] != ')'; skip()) {
      std::string piece;
      const char c = s_[i_];
      if (c == '(') {
        if (++depth_ > kMaxDepth) fail("parentheses nest deeper than " + std::to_string(kMaxDepth));
        ++i_;
        piece = sequence();
        --depth_;
        if (i_ >= s_.size()) fail("'(' is not closed");
        ++i_;  // ')'
      } else if (c == 'E' || c == 't' || c == 'm' || c == 'L' || c == '|') {
        piece = std::string(1, c);
        ++i_;
      } else {
        fail(std::string("unknown symbol '") + c + "'");
      }
      skip();
      const long times = i_ < s_.size() && s_[i_] == '*' ? count() : 1;
      append(out, piece, times);
    }
    return out;
  }

  const std::string& s_;
  const std::string& where_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

PipelineLayout parse_pipeline_layout(const std::string& text, const std::string& where) {
  PipelineLayout p;
  p.text = text;
  const std::string flat = Parser(text, where).expand();
  p.chunks.emplace_back();
  char first = 0, last = 0;
  bool seen_mtp = false;
  for (char c : flat) {
    PipelineChunk& k = p.chunks.back();
    if (c != '|') {
      if (!first) first = c;
      last = c;
    }
    if (c == '|') p.chunks.emplace_back();
    else if (c == 't') {
      ++k.layers;
      if (seen_mtp) p.layer_after_mtp = true;
    } else if (c == 'm') {
      ++k.mtp;
      seen_mtp = true;
    }
    else if (c == 'E') {
      if (k.embedding) throw InputError(where, "'" + text + "': E (the embedding) appears twice");
      k.embedding = true;
    } else if (c == 'L') {
      if (k.loss) throw InputError(where, "'" + text + "': L (the loss) appears twice");
      k.loss = true;
    }
  }
  p.opens_with_embedding = first == 'E';
  p.closes_with_loss = last == 'L';
  return p;
}

int pipeline_layout_vp(const PipelineLayout& p, std::optional<int> pp, std::optional<int> vp, const std::string& where) {
  const auto n = static_cast<int>(p.chunks.size());
  if (!pp) throw InputError(where, "'" + p.text + "' needs pp (the pipeline ranks its " + std::to_string(n) + " stages fold onto)");
  if (*pp < 1 || n % *pp != 0)
    throw InputError(where, "'" + p.text + "' has " + std::to_string(n) + " stages, not a multiple of pp " + std::to_string(*pp));
  if (vp && *vp != n / *pp)
    throw InputError(where, "'" + p.text + "' has " + std::to_string(n) + " stages, " + std::to_string(n / *pp) +
                                " per pipeline rank, and vp is " + std::to_string(*vp));
  return n / *pp;
}

std::optional<std::string> pipeline_layout_problem(const PipelineLayout& p, int layers, int mtp, int pp) {
  const auto n = static_cast<int>(p.chunks.size());
  if (pp < 1 || n % pp != 0)
    return "'" + p.text + "' has " + std::to_string(n) + " stages, not a multiple of pp " + std::to_string(pp);
  if (p.layers() != layers)
    return "'" + p.text + "' places " + std::to_string(p.layers()) + " decoder layers (t), and the model has " + std::to_string(layers);
  if (p.mtp() != mtp)
    return "'" + p.text + "' places " + std::to_string(p.mtp()) + " MTP layers (m), and the plan trains " + std::to_string(mtp) +
           " (--mtp-layers, or the model's mtp_layers)";
  int embeddings = 0, losses = 0;
  for (const auto& c : p.chunks) {
    embeddings += c.embedding;
    losses += c.loss;
  }
  if (embeddings != 1 || !p.chunks.front().embedding || !p.opens_with_embedding)
    return "'" + p.text + "' must open with E (the embedding), once";
  if (losses != 1 || !p.chunks.back().loss || !p.closes_with_loss) return "'" + p.text + "' must close with L (the loss), once";
  // Megatron-Core's validate_layer_layout: the MTP layers follow every decoder layer, all in one
  // stage, and that stage is a rank's last virtual chunk.
  if (mtp > 0) {
    if (p.layer_after_mtp) return "'" + p.text + "' places a decoder layer (t) after an MTP layer (m)";
    int holder = -1;
    for (int c = 0; c < n; ++c)
      if (p.chunks[static_cast<std::size_t>(c)].mtp > 0) {
        if (holder >= 0) return "'" + p.text + "' splits its MTP layers (m) over two stages; Megatron-Core keeps them in one";
        holder = c;
      }
    if (holder / pp != n / pp - 1)
      return "'" + p.text + "' places its MTP layers (m) in virtual chunk " + std::to_string(holder / pp) + " of rank " +
             std::to_string(holder % pp) + "; Megatron-Core needs a rank's last (" + std::to_string(n / pp - 1) + ")";
  }
  return std::nullopt;
}

}  // namespace xpu
