// dirstat — what a folder holds, as a pixflow graph with a route, a merge and a broadcast.
//
//   files (source) ─▶ limit ─▶ kind (route) ─┬─ image ─▶ measure image (compute: reads the header)  ─┐
//                                            ├─ text ──▶ count lines (compute: reads the file) ──────┼─▶ measured (merge) ─┬─▶ totals (sink)
//                                            └─ other ──────────────────────────────────────────────┘                      └─▶ largest (sink)
//                                                                                                   (the merged stream feeds both: a broadcast)
//
// Every file of DIR (recursively) is routed by its extension; images have their pixel size read from
// their header, text files their lines counted, other files only their size; the three streams merge
// into one, which both sinks see whole: one adds up totals per kind, the other keeps the 5 largest
// files. An unreadable file fails with its reason and the run goes on. `--dump-graph` prints the
// graph as DOT, `--trace FILE` writes a Chrome trace of the run.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <pixflow/engine/cancel.hpp>
#include <pixflow/engine/graph.hpp>

namespace fs = std::filesystem;

namespace {

enum Kind : std::size_t { image = 0, text = 1, other = 2 };
constexpr std::array<const char*, 3> kind_names{"image", "text", "other"};

struct File {
  fs::path path;
  std::uintmax_t bytes = 0;
};
struct Measured {
  fs::path path;
  Kind kind = other;
  std::uintmax_t bytes = 0;
  std::string detail;  // "640x480", "120 lines", ""
};

Kind kind_of(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* e : {".png", ".jpg", ".jpeg", ".gif"})
    if (ext == e) return image;
  for (const char* e : {".txt", ".md", ".cpp", ".hpp", ".h", ".c", ".py", ".sh", ".json", ".cmake", ".conf", ".in"})
    if (ext == e) return text;
  return other;
}

/// The first `n` bytes of a file.
pixflow::Result<std::vector<unsigned char>> head(const fs::path& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return pixflow::Failure{"cannot open"};
  std::vector<unsigned char> bytes(n);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

std::uint32_t be(const std::vector<unsigned char>& b, std::size_t at, int width) {
  std::uint32_t v = 0;
  for (int i = 0; i < width; ++i) v = v << 8 | b[at + static_cast<std::size_t>(i)];
  return v;
}

/// An image's pixel size from its header (PNG, GIF, JPEG's first frame header).
pixflow::Result<Measured> measure_image(File f) {
  auto bytes = head(f.path, 64 * 1024);
  if (!bytes) return std::move(bytes).failure();
  const auto& b = bytes.value();
  Measured m{f.path, image, f.bytes, ""};
  auto size = [&](std::uint32_t w, std::uint32_t h) { m.detail = std::to_string(w) + "x" + std::to_string(h); };
  if (b.size() >= 24 && b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G') {
    size(be(b, 16, 4), be(b, 20, 4));
  } else if (b.size() >= 10 && b[0] == 'G' && b[1] == 'I' && b[2] == 'F') {
    size(static_cast<std::uint32_t>(b[6] | b[7] << 8), static_cast<std::uint32_t>(b[8] | b[9] << 8));
  } else if (b.size() >= 4 && b[0] == 0xFF && b[1] == 0xD8) {
    for (std::size_t i = 2; i + 9 < b.size();) {
      if (b[i] != 0xFF) return pixflow::Failure{"corrupt jpeg"};
      const unsigned marker = b[i + 1];
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
        size(be(b, i + 7, 2), be(b, i + 5, 2));
        break;
      }
      i += 2 + be(b, i + 2, 2);
    }
    if (m.detail.empty()) return pixflow::Failure{"no frame header in the first 64 KiB"};
  } else {
    return pixflow::Failure{"not an image it knows"};
  }
  return m;
}

pixflow::Result<Measured> count_lines(File f) {
  std::ifstream in(f.path, std::ios::binary);
  if (!in) return pixflow::Failure{"cannot open"};
  std::size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return Measured{f.path, text, f.bytes, std::to_string(lines) + " lines"};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  std::string trace;
  bool dump_graph = false;
  std::size_t threads = 0;
  CLI::App app{
      "dirstat — what a folder holds: every file routed by kind (image, text, other), measured, the\n"
      "streams merged and broadcast to two sinks (totals per kind, the 5 largest files). A pixflow demo."};
  app.set_version_flag("--version", std::string("dirstat (pixflow) ") + PIXFLOW_VERSION);
  app.add_option("dir", dir, "Folder to look through (recursively)");
  app.add_option("--threads", threads, "Worker threads (0 = every core)")->capture_default_str();
  app.add_option("--trace", trace, "Write a Chrome-trace JSON of the run to FILE");
  app.add_flag("--dump-graph", dump_graph, "Print the graph as Graphviz DOT and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  std::error_code ec;
  if (!dump_graph && !fs::is_directory(dir, ec)) {
    std::cerr << "dirstat: no such folder: " << dir << '\n';
    return 2;
  }

  pixflow::install_interrupt_handler();
  pixflow::Graph graph({.threads = threads, .max_in_flight = 32, .stop_on_interrupt = true, .trace_path = trace});
  std::size_t failed = 0;
  graph.on_failure([&](const pixflow::ItemFailure& f) {  // one call at a time
    ++failed;
    std::cerr << "dirstat: " << f.stage << ": " << f.reason << '\n';
  });

  // The source walks the folder lazily: one entry per free place.
  std::optional<fs::recursive_directory_iterator> walk;
  if (!dump_graph) walk.emplace(dir, fs::directory_options::skip_permission_denied, ec);
  auto files = graph.source("files", [&]() -> std::optional<File> {
                      for (; walk && *walk != fs::recursive_directory_iterator(); walk->increment(ec)) {
                        if (ec) return std::nullopt;
                        const auto& entry = **walk;
                        std::error_code size_ec;
                        if (!entry.is_regular_file(size_ec)) continue;
                        File f{entry.path(), entry.file_size(size_ec)};
                        walk->increment(ec);
                        return f;
                      }
                      return std::nullopt;
                    })
                   .limit();
  auto [images, texts, others] =
      files.route("kind", {kind_names[image], kind_names[text], kind_names[other]}, [](const File& f) -> std::size_t { return kind_of(f.path); });
  auto sized = images.compute("measure image", pixflow::Concurrency::unlimited(), measure_image);
  auto counted = texts.compute("count lines", pixflow::Concurrency::unlimited(), count_lines);
  auto rest = others.compute("size only", pixflow::Concurrency::unlimited(),
                             [](File f) -> pixflow::Result<Measured> { return Measured{f.path, other, f.bytes, ""}; });
  auto measured = pixflow::merge("measured", sized, counted, rest);

  std::array<std::uintmax_t, 3> count{}, bytes{};
  measured.sink("totals", pixflow::Concurrency(1), [&](Measured m) {
    ++count[m.kind];
    bytes[m.kind] += m.bytes;
    return pixflow::ok();
  });
  std::vector<Measured> largest;
  measured.sink("largest", pixflow::Concurrency(1), [&](Measured m) {
    largest.push_back(std::move(m));
    std::sort(largest.begin(), largest.end(), [](const Measured& a, const Measured& b) { return a.bytes > b.bytes; });
    if (largest.size() > 5) largest.pop_back();
    return pixflow::ok();
  });

  if (dump_graph) {
    std::cout << graph.dot();
    return 0;
  }
  const pixflow::RunReport report = graph.run();
  for (std::size_t k = 0; k < 3; ++k)
    std::printf("%-6s %6ju files %12ju bytes\n", kind_names[k], count[k], bytes[k]);
  std::printf("largest:\n");
  for (const Measured& m : largest)
    std::printf("  %12ju  %-14s %s\n", m.bytes, m.detail.c_str(), fs::relative(m.path, dir, ec).string().c_str());
  std::printf("%ju files measured, %zu failed in %.3f s\n", count[0] + count[1] + count[2], failed, report.wall_s);
  if (report.cancelled) std::cerr << "dirstat: stopped: " << report.cancel_reason << '\n';
  return failed == 0 && !report.cancelled ? 0 : 1;
}
