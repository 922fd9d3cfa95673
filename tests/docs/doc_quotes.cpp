// Docs quote compiled code: every ```cpp block in README.md and docs/ must
// appear, whitespace aside, in a source file of the repository (a sample, a
// test, a header), so that a quoted example cannot drift from code that CI
// builds and runs. A block may be cut with elision lines ("...", "// ...");
// each piece is then looked up on its own. A first line "// path/to/file"
// that names a repository file restricts the search to that file (and is not
// part of the quote). A block that is a sketch, not a quote, says so on the
// line before its fence: <!-- sketch -->.
//
//   taiga-doc-quotes <repository root>     # exit status 1 on a stale quote
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string squeeze(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

bool is_elision(const std::string& line) {
  std::string t = trim(line);
  return t == "..." || t == "// ..." || t == "//..." || t == "/* ... */";
}

bool is_source(const fs::path& p) {
  std::string e = p.extension().string();
  return e == ".cpp" || e == ".hpp" || e == ".h" || e == ".go";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <repository root>\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  std::map<std::string, std::string> sources;  // relative path -> squeezed text
  for (const char* dir : {"runtime", "channels", "net", "tools", "tests", "samples"}) {
    if (!fs::is_directory(root / dir)) continue;
    for (auto it = fs::recursive_directory_iterator(root / dir);
         it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_directory() && it->path().filename() == "build") {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && is_source(it->path()))
        sources[fs::relative(it->path(), root).generic_string()] = squeeze(read(it->path()));
    }
  }
  if (sources.empty()) {
    std::fprintf(stderr, "doc-quotes: no sources under %s\n", root.c_str());
    return 2;
  }

  std::vector<fs::path> docs{root / "README.md"};
  if (fs::is_directory(root / "docs"))
    for (auto& e : fs::recursive_directory_iterator(root / "docs"))
      if (e.is_regular_file() && e.path().extension() == ".md") docs.push_back(e.path());
  std::sort(docs.begin() + 1, docs.end());

  int blocks = 0, stale = 0;
  for (const fs::path& doc : docs) {
    if (!fs::exists(doc)) continue;
    std::istringstream in(read(doc));
    std::string line, prev;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (trim(line) != "```cpp") {
        if (!trim(line).empty()) prev = trim(line);
        continue;
      }
      const int start = n;
      const bool sketch = prev == "<!-- sketch -->";
      std::vector<std::string> body;
      while (std::getline(in, line) && trim(line) != "```") {
        ++n;
        body.push_back(line);
      }
      ++n;
      prev.clear();
      if (sketch) continue;
      ++blocks;
      // "// samples/x.cpp" naming a file: look only there.
      std::vector<const std::string*> where;
      if (!body.empty() && trim(body[0]).rfind("// ", 0) == 0) {
        auto it = sources.find(trim(body[0]).substr(3));
        if (it != sources.end()) {
          where.push_back(&it->second);
          body.erase(body.begin());
        }
      }
      if (where.empty())
        for (auto& [path, text] : sources) where.push_back(&text);
      // Pieces between elision lines.
      std::vector<std::string> pieces(1);
      for (const auto& l : body) {
        if (is_elision(l)) {
          pieces.emplace_back();
        } else {
          pieces.back() += l + "\n";
        }
      }
      for (const auto& piece : pieces) {
        std::string want = squeeze(piece);
        if (want.empty()) continue;
        bool found = std::any_of(where.begin(), where.end(), [&](const std::string* s) {
          return s->find(want) != std::string::npos;
        });
        if (found) continue;
        ++stale;
        // Name the first line that is nowhere, to point at the drift.
        std::string culprit;
        std::istringstream ls(piece);
        for (std::string l; std::getline(ls, l);) {
          std::string w = squeeze(l);
          if (w.empty()) continue;
          bool any = std::any_of(where.begin(), where.end(), [&](const std::string* s) {
            return s->find(w) != std::string::npos;
          });
          if (!any) {
            culprit = trim(l);
            break;
          }
        }
        std::fprintf(stderr,
                     "%s:%d: a ```cpp block is not a quote of any source file%s%s\n"
                     "  (update it from the code it quotes, or mark a sketch with "
                     "<!-- sketch --> on the line before the fence)\n",
                     fs::relative(doc, root).c_str(), start,
                     culprit.empty() ? " (its lines exist, but not together)"
                                     : "; first line found nowhere: ",
                     culprit.c_str());
        break;
      }
    }
  }
  std::printf("doc-quotes: %d quoted blocks checked, %d stale\n", blocks, stale);
  return stale == 0 ? 0 : 1;
}
