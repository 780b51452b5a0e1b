#include <doctest/doctest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "evformer/error.hpp"
#include "evformer/io/h5.hpp"
#include "evformer/io/nir.hpp"
#include "io/nir_graphs.hpp"
#include "support.hpp"

using evformer::ConfigError;
using evformer::FileError;
using evformer::test::ScratchDir;
namespace h5 = evformer::io::h5;
namespace nir = evformer::io::nir;

namespace {

std::filesystem::path example(const std::string& name) {
    return std::filesystem::path(EVFORMER_SOURCE_DIR) / "examples" / "nir" / name;
}

const std::vector<std::string> real_files = {"lif_norse.nir", "cnn_sinabs.nir",
                                             "braille_noDelay_bias_zero.nir"};

std::vector<std::string> names_of(const nir::Graph& g) {
    std::vector<std::string> out;
    for (const auto& n : g.nodes) out.push_back(n.name);
    return out;
}

const nir::Value& field(const nir::Graph& g, const std::string& node, const std::string& key) {
    const auto* n = g.find(node);
    REQUIRE_MESSAGE(n, "no node " << node);
    const auto* v = n->field(key);
    REQUIRE_MESSAGE(v, "no field " << node << "/" << key);
    return *v;
}

std::vector<double> doubles(std::initializer_list<double> v) {
    return v;
}

// A minimal valid NIR file (input → output) written with the HDF5 store, to which a test adds or
// from which it leaves out what it needs.
void write_minimal(h5::Writer& w, bool with_version = true, bool with_root_type = true) {
    if (with_version) w.write_strings("version", std::vector<std::string>{"0.2.0"}, {});
    if (with_root_type) w.write_strings("node/type", std::vector<std::string>{"NIRGraph"}, {});
    w.write_strings("node/nodes/input/type", std::vector<std::string>{"Input"}, {});
    w.write<std::int64_t>("node/nodes/input/shape", std::vector<std::int64_t>{4}, {1});
    w.write_strings("node/nodes/output/type", std::vector<std::string>{"Output"}, {});
    w.write<std::int64_t>("node/nodes/output/shape", std::vector<std::int64_t>{4}, {1});
}

// Runs read() on a file and checks that it fails with a FileError naming the file and `text`.
void check_refused(const std::filesystem::path& file, const std::string& text) {
    CAPTURE(file);
    CAPTURE(text);
    try {
        (void)nir::read(file);
        FAIL("read() accepted the file");
    } catch (const FileError& e) {
        const std::string message = e.what();
        CAPTURE(message);
        CHECK(message.find(file.string()) != std::string::npos);
        CHECK(message.find(text) != std::string::npos);
        CHECK(message.find('\n') == std::string::npos);
    }
}

// HDF5's C API, for layouts the store does not write (fixed-length strings, enums, links).
struct CFile {
    hid_t id;
    explicit CFile(const std::filesystem::path& p)
        : id(H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
        REQUIRE(id >= 0);
    }
    ~CFile() { H5Fclose(id); }
    CFile(const CFile&) = delete;
    CFile& operator=(const CFile&) = delete;

    // Writes fixed-length, null-padded ASCII strings (numpy `S` arrays, as h5py stores them).
    void fixed_strings(const char* path, const std::vector<std::string>& values,
                       std::vector<hsize_t> dims) {
        std::size_t width = 1;
        for (const auto& s : values) width = std::max(width, s.size());
        std::string buffer;
        for (const auto& s : values) buffer += s + std::string(width - s.size(), '\0');
        const hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, width);
        H5Tset_strpad(type, H5T_STR_NULLPAD);
        const hid_t space =
            dims.empty() ? H5Screate(H5S_SCALAR)
                         : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
        const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        const hid_t ds = H5Dcreate2(id, path, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(ds >= 0);
        REQUIRE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) >= 0);
        H5Dclose(ds);
        H5Pclose(lcpl);
        H5Sclose(space);
        H5Tclose(type);
    }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The real files

TEST_CASE("nir reads cnn_sinabs.nir (Sinabs, NIR 0.2.0): names, types, shapes, edges, values") {
    const auto g = nir::read(example("cnn_sinabs.nir"));
    CHECK(g.version == "0.2.0");
    CHECK(names_of(g) == std::vector<std::string>{"0", "1", "10", "11", "12", "2", "3", "4", "5",
                                                  "6", "7", "8", "9", "input", "output"});
    const std::vector<std::pair<std::string, std::string>> types = {
        {"0", "Conv2d"},    {"1", "IF"},        {"2", "Conv2d"},     {"3", "IF"},
        {"4", "SumPool2d"}, {"5", "Conv2d"},    {"6", "IF"},         {"7", "SumPool2d"},
        {"8", "Flatten"},   {"9", "Affine"},    {"10", "IF"},        {"11", "Affine"},
        {"12", "IF"},       {"input", "Input"}, {"output", "Output"}};
    for (const auto& [name, type] : types) {
        CAPTURE(name);
        REQUIRE(g.find(name));
        CHECK(g.find(name)->type == type);
        CHECK_FALSE(g.find(name)->graph);
    }
    CHECK(g.edges.size() == 14);
    CHECK(g.edges.front() == std::pair<std::string, std::string>{"8", "9"});
    CHECK(g.edges.back() == std::pair<std::string, std::string>{"10", "11"});
    CHECK(g.fields.empty());

    const auto& w = field(g, "0", "weight");
    CHECK(w.is_number());
    CHECK(w.dtype == h5::DType::f32);
    CHECK(w.shape == h5::Shape{16, 2, 5, 5});
    REQUIRE(w.numbers.size() == 800);
    CHECK(w.numbers.front() == static_cast<double>(-0.2573422f));
    CHECK(w.numbers.back() == static_cast<double>(0.10971786f));
    CHECK(field(g, "0", "stride").numbers == doubles({2, 2}));
    CHECK(field(g, "0", "stride").dtype == h5::DType::i64);
    CHECK(field(g, "0", "groups").shape.empty());
    CHECK(field(g, "0", "groups").as_number() == 1);
    CHECK(field(g, "0", "input_shape").numbers == doubles({34, 34}));
    CHECK(g.find("0")->fields.size() ==
          7);  // bias dilation groups input_shape padding stride weight

    const auto& in = field(g, "input", "shape");
    CHECK(in.dtype == h5::DType::i64);
    CHECK(in.shape == h5::Shape{3});
    CHECK(in.numbers == doubles({2, 34, 34}));
    CHECK(field(g, "8", "input_type").numbers == doubles({8, 4, 4}));
    CHECK(field(g, "8", "start_dim").as_number() == 0);
    CHECK(field(g, "8", "end_dim").as_number() == -1);
    CHECK(field(g, "11", "weight").shape == h5::Shape{10, 256});
    CHECK(field(g, "11", "weight").numbers.back() == static_cast<double>(-0.33435637f));
    CHECK(field(g, "1", "r").shape == h5::Shape{16, 16, 16});
    CHECK(g.find("1")->field("v_reset") == nullptr);  // optional, absent before NIR 1.0.6
    CHECK(field(g, "output", "shape").numbers == doubles({10}));
}

TEST_CASE("nir reads lif_norse.nir (Norse, NIR 0.1.1)") {
    const auto g = nir::read(example("lif_norse.nir"));
    CHECK(g.version == "0.1.1");
    CHECK(names_of(g) == std::vector<std::string>{"0", "1", "input", "output"});
    CHECK(g.find("0")->type == "Affine");
    CHECK(g.find("1")->type == "LIF");
    CHECK(g.find("input")->type == "Input");
    CHECK(g.find("output")->type == "Output");
    CHECK(g.edges == std::vector<std::pair<std::string, std::string>>{
                         {"input", "0"}, {"0", "1"}, {"1", "output"}});
    CHECK(field(g, "1", "tau").dtype == h5::DType::f32);
    CHECK(field(g, "1", "tau").numbers == doubles({static_cast<double>(0.0025f)}));
    CHECK(field(g, "1", "v_threshold").numbers == doubles({static_cast<double>(0.1f)}));
    CHECK(field(g, "0", "weight").shape == h5::Shape{1, 1});
    CHECK(field(g, "input", "shape").numbers == doubles({1}));
    CHECK(g.find("1")->fields.size() == 4);  // r tau v_leak v_threshold
}

TEST_CASE("nir reads braille_noDelay_bias_zero.nir (NIR 0.2.0): dotted names, f32 and f64") {
    const auto g = nir::read(example("braille_noDelay_bias_zero.nir"));
    CHECK(g.version == "0.2.0");
    CHECK(names_of(g) == std::vector<std::string>{"fc1", "fc2", "input", "lif1.lif", "lif1.w_rec",
                                                  "lif2", "output"});
    CHECK(g.find("lif1.lif")->type == "CubaLIF");
    CHECK(g.find("lif1.w_rec")->type == "Affine");
    CHECK(g.find("lif2")->type == "CubaLIF");
    CHECK(g.edges.size() == 7);
    CHECK(g.edges.front() == std::pair<std::string, std::string>{"lif1.w_rec", "lif1.lif"});
    CHECK(g.edges[4] == std::pair<std::string, std::string>{"lif1.lif", "lif1.w_rec"});
    const auto& r = field(g, "lif1.lif", "r");
    CHECK(r.dtype == h5::DType::f64);
    CHECK(r.shape == h5::Shape{38});
    CHECK(r.numbers.front() == 9.999997615814776);
    CHECK(field(g, "lif1.lif", "tau_syn").numbers.front() == 0.0002222222281091009);
    const auto& w = field(g, "lif1.w_rec", "weight");
    CHECK(w.dtype == h5::DType::f32);
    CHECK(w.shape == h5::Shape{38, 38});
    CHECK(w.numbers.front() == static_cast<double>(-0.4730911f));
    CHECK(field(g, "fc1", "weight").shape == h5::Shape{38, 12});
    CHECK(field(g, "input", "shape").numbers == doubles({12}));
    CHECK(g.find("lif1") == nullptr);
}

TEST_CASE("nir round trip: each real file reads back identical after write, plain and gzip") {
    ScratchDir dir;
    for (const auto& name : real_files) {
        CAPTURE(name);
        const auto original = nir::read(example(name));
        nir::write(dir / name, original);
        CHECK(nir::read(dir / name) == original);
        nir::write(dir / ("gz-" + name), original, {.gzip_level = 6});
        CHECK(nir::read(dir / ("gz-" + name)) == original);
    }
    // arrays of the gzip files carry the deflate filter, scalars and strings none
    const auto filters = [](const std::filesystem::path& file, const char* dataset) {
        const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        REQUIRE(f >= 0);
        const hid_t ds = H5Dopen2(f, dataset, H5P_DEFAULT);
        REQUIRE(ds >= 0);
        const hid_t plist = H5Dget_create_plist(ds);
        std::vector<H5Z_filter_t> out;
        for (int i = 0; i < H5Pget_nfilters(plist); ++i)
            out.push_back(H5Pget_filter2(plist, static_cast<unsigned>(i), nullptr, nullptr, nullptr,
                                         0, nullptr, nullptr));
        H5Pclose(plist);
        H5Dclose(ds);
        H5Fclose(f);
        return out;
    };
    const auto gz = dir / "gz-cnn_sinabs.nir";
    const auto with_deflate = filters(gz, "/node/nodes/0/weight");
    CHECK(std::find(with_deflate.begin(), with_deflate.end(), H5Z_FILTER_DEFLATE) !=
          with_deflate.end());
    CHECK(filters(gz, "/node/nodes/0/groups").empty());
    CHECK(filters(gz, "/node/nodes/0/type").empty());
    CHECK(filters(dir / "cnn_sinabs.nir", "/node/nodes/0/weight").empty());
}

// ---------------------------------------------------------------------------------------------
// Hand-built graphs

TEST_CASE("nir round trip: nested graphs, f32/f64/i64/u8, NaN, strings, dicts, zero edges") {
    ScratchDir dir;
    const auto g = evformer::test::sample_graph();
    nir::write(dir / "sample.nir", g);
    const auto back = nir::read(dir / "sample.nir");
    CHECK(back == g);

    const auto* sub = back.find("sub");
    REQUIRE(sub);
    REQUIRE(sub->graph);
    CHECK(sub->field("metadata")->fields.at("note").as_string() == "nested");
    CHECK(sub->graph->edges.size() == 2);
    const auto* deep = sub->graph->find("deep");
    REQUIRE(deep);
    REQUIRE(deep->graph);
    CHECK(deep->graph->edges.empty());
    CHECK(deep->graph->find("only")->type == "Threshold");
    CHECK(back.find("mystery")->type == "MyOwnNeuron");
    CHECK(std::isnan(back.find("mystery")->field("gain")->numbers[0]));
    CHECK(field(back, "conv.0", "padding").as_string() == "same");
    CHECK(field(back, "conv.0", "weight").dtype == h5::DType::f32);
    CHECK(field(back, "conv.0", "bias").dtype == h5::DType::f64);
    CHECK(back.fields.at("metadata").fields.at("author").as_string() == "evformer tests \u00b5");
    CHECK(back.fields.at("metadata").fields.at("nested").fields.at("flag").dtype == h5::DType::u8);

    // the layout on disk, through the HDF5 store
    h5::Reader r(dir / "sample.nir");
    CHECK(r.read_strings("version") == std::vector<std::string>{"1.0.7"});
    CHECK(r.read_strings("node/type") == std::vector<std::string>{"NIRGraph"});
    CHECK(r.read_strings("node/nodes/sub/type") == std::vector<std::string>{"NIRGraph"});
    CHECK(r.shape("node/edges") == h5::Shape{4, 2});
    CHECK(r.shape("node/nodes/sub/nodes/deep/edges") == h5::Shape{0, 2});
    CHECK(r.is_string("node/nodes/sub/nodes/deep/edges"));
    CHECK(r.dtype("node/nodes/conv.0/stride") == h5::DType::i64);
    CHECK(r.is_group("node/nodes/conv.0/metadata"));

    // a graph differing in one value, dtype or name compares unequal
    auto other = g;
    other.nodes[0].fields["bias"].numbers[1] = -0.5;
    CHECK_FALSE(other == g);
    other = g;
    other.nodes[0].fields["bias"].dtype = h5::DType::f32;
    CHECK_FALSE(other == g);
    other = g;
    other.edges.pop_back();
    CHECK_FALSE(other == g);
}

TEST_CASE("nir write stores default_version when the graph has none, and an empty graph works") {
    ScratchDir dir;
    nir::Graph empty;
    nir::write(dir / "empty.nir", empty);
    const auto back = nir::read(dir / "empty.nir");
    CHECK(back.version == std::string(nir::default_version));
    CHECK(back.nodes.empty());
    CHECK(back.edges.empty());
    h5::Reader r(dir / "empty.nir");
    CHECK(r.is_group("node/nodes"));
    CHECK(r.shape("node/edges") == h5::Shape{0, 2});
}

TEST_CASE("nir reads gzip-compressed arrays written with the HDF5 store") {
    ScratchDir dir;
    const auto file = dir / "gzip.nir";
    std::vector<float> weight(64 * 32);
    for (std::size_t i = 0; i < weight.size(); ++i) weight[i] = static_cast<float>(i % 7) * 0.5f;
    {
        h5::Writer w(file);
        write_minimal(w);
        w.write_strings("node/nodes/fc/type", std::vector<std::string>{"Affine"}, {});
        w.write<float>("node/nodes/fc/weight", weight, {64, 32},
                       {.chunk_rows = 8, .gzip_level = 9});
        w.write<double>("node/nodes/fc/bias", std::vector<double>(64, 0.25), {64},
                        {.gzip_level = 1});
        w.write_strings("node/edges", std::vector<std::string>{"input", "fc", "fc", "output"},
                        {2, 2});
        w.commit();
    }
    const auto g = nir::read(file);
    const auto& w = field(g, "fc", "weight");
    CHECK(w.dtype == h5::DType::f32);
    CHECK(w.shape == h5::Shape{64, 32});
    REQUIRE(w.numbers.size() == weight.size());
    for (std::size_t i = 0; i < weight.size(); ++i)
        CHECK(w.numbers[i] == static_cast<double>(weight[i]));
    CHECK(field(g, "fc", "bias").numbers == std::vector<double>(64, 0.25));
}

TEST_CASE(
    "nir reads older and other layouts: no version, no root type, empty edges, fixed "
    "strings, input_type dicts") {
    ScratchDir dir;
    const auto file = dir / "old.nir";
    {
        h5::Writer w(file);
        write_minimal(w, /*with_version=*/false, /*with_root_type=*/false);
        w.write<double>("node/edges", std::vector<double>{}, {0});  // h5py's empty list
        // the 1.0 development versions stored input_type/output_type dicts as groups
        w.write<std::int64_t>("node/nodes/input/input_type/input", std::vector<std::int64_t>{4},
                              {1});
        w.write<std::int64_t>("node/input_type/input", std::vector<std::int64_t>{4}, {1});
        w.write_strings("node/metadata/source", std::vector<std::string>{"hand"}, {});
        w.commit();
    }
    {
        CFile f(file);
        f.fixed_strings("/node/nodes/lif/type", {"LIF"}, {});
        f.fixed_strings("/node/nodes/lif/labels", {"ab", "c", "def"}, {3});
    }
    const auto g = nir::read(file);
    CHECK(g.version.empty());
    CHECK(g.edges.empty());
    CHECK(names_of(g) == std::vector<std::string>{"input", "lif", "output"});
    CHECK(g.find("lif")->type == "LIF");
    CHECK(field(g, "lif", "labels").strings == std::vector<std::string>{"ab", "c", "def"});
    CHECK(field(g, "lif", "labels").shape == h5::Shape{3});
    const auto& input_type = field(g, "input", "input_type");
    CHECK(input_type.is_dict());
    CHECK(input_type.fields.at("input").numbers == doubles({4}));
    CHECK(g.fields.at("input_type").fields.at("input").dtype == h5::DType::i64);
    CHECK(g.fields.at("metadata").fields.at("source").as_string() == "hand");
    CHECK(g.fields.count("type") == 0);
}

TEST_CASE("nir edges may name a node inside a NIRGraph node as <subgraph>.<node>") {
    ScratchDir dir;
    auto g = evformer::test::sample_graph();
    g.edges.emplace_back("sub.deep.only", "output");  // two levels down
    nir::write(dir / "deep.nir", g);
    CHECK(nir::read(dir / "deep.nir") == g);
    g.edges.emplace_back("sub.nothing", "output");
    CHECK_THROWS_WITH_AS(nir::write(dir / "bad.nir", g), doctest::Contains("'sub.nothing'"),
                         ConfigError);
    CHECK_FALSE(std::filesystem::exists(dir / "bad.nir"));
}

// ---------------------------------------------------------------------------------------------
// Malformed files

TEST_CASE("nir read refuses a file that is missing, not HDF5, or truncated") {
    ScratchDir dir;
    check_refused(dir / "absent.nir", "no such file");
    evformer::test::write_bytes(dir / "text.nir", {'n', 'o', 't', ' ', 'h', 'd', 'f'});
    check_refused(dir / "text.nir", "not an HDF5 file");
    auto bytes = evformer::test::read_bytes(example("cnn_sinabs.nir"));
    bytes.resize(bytes.size() / 2);
    evformer::test::write_bytes(dir / "half.nir", bytes);
    check_refused(dir / "half.nir", "truncated");
}

TEST_CASE("nir read refuses a file without /node, or whose root is not a NIRGraph") {
    ScratchDir dir;
    {
        h5::Writer w(dir / "nonode.nir");
        w.write_strings("version", std::vector<std::string>{"1.0.0"}, {});
        w.commit();
    }
    check_refused(dir / "nonode.nir", "/node: missing");
    {
        h5::Writer w(dir / "lifroot.nir");
        w.write_strings("node/type", std::vector<std::string>{"LIF"}, {});
        w.commit();
    }
    check_refused(dir / "lifroot.nir",
                  "/node/type: is 'LIF': the root of a NIR file must be a "
                  "NIRGraph");
    {
        h5::Writer w(dir / "numversion.nir");
        write_minimal(w, false);
        w.write<double>("version", std::vector<double>{1.0}, {});
        w.write_strings("node/edges", std::vector<std::string>{}, {0, 2});
        w.commit();
    }
    check_refused(dir / "numversion.nir", "/version: the NIR version must be a string scalar");
}

TEST_CASE("nir read refuses a node without type, or with a type that is not a string") {
    ScratchDir dir;
    {
        h5::Writer w(dir / "notype.nir");
        write_minimal(w);
        w.write<float>("node/nodes/fc/weight", std::vector<float>{1.f}, {1, 1});
        w.write_strings("node/edges", std::vector<std::string>{}, {0, 2});
        w.commit();
    }
    check_refused(dir / "notype.nir", "/node/nodes/fc: node group without `type`");
    {
        h5::Writer w(dir / "numtype.nir");
        write_minimal(w);
        w.write<double>("node/nodes/fc/type", std::vector<double>{3.0}, {});
        w.write_strings("node/edges", std::vector<std::string>{}, {0, 2});
        w.commit();
    }
    check_refused(dir / "numtype.nir",
                  "/node/nodes/fc/type: the node type must be a string scalar, found a f64 "
                  "dataset of shape ()");
    {
        h5::Writer w(dir / "dataset_node.nir");
        write_minimal(w);
        w.write<double>("node/nodes/stray", std::vector<double>{3.0}, {});
        w.write_strings("node/edges", std::vector<std::string>{}, {0, 2});
        w.commit();
    }
    check_refused(dir / "dataset_node.nir",
                  "/node/nodes/stray: is a f64 dataset of shape (), "
                  "expected a node group");
}

TEST_CASE("nir read refuses edges that are not an N×2 string dataset or name no node") {
    ScratchDir dir;
    const auto with_edges = [&](const std::string& name, auto&& write_edges) {
        h5::Writer w(dir / name);
        write_minimal(w);
        write_edges(w);
        w.commit();
        return dir / name;
    };
    check_refused(with_edges("three.nir",
                             [](h5::Writer& w) {
                                 w.write_strings("node/edges",
                                                 std::vector<std::string>{"input", "output", "x"},
                                                 {1, 3});
                             }),
                  "/node/edges: edges must be an N×2 string dataset, found a string dataset of "
                  "shape (1, 3)");
    check_refused(
        with_edges(
            "flat.nir",
            [](h5::Writer& w) {
                w.write_strings("node/edges", std::vector<std::string>{"input", "output"}, {2});
            }),
        "found a string dataset of shape (2,)");
    check_refused(
        with_edges("numeric.nir",
                   [](h5::Writer& w) {
                       w.write<std::int64_t>("node/edges", std::vector<std::int64_t>{0, 1}, {1, 2});
                   }),
        "found a i64 dataset of shape (1, 2)");
    check_refused(with_edges("group.nir", [](h5::Writer& w) { w.group("node/edges/x"); }),
                  "/node/edges: edges must be an N×2 string dataset, found a group");
    check_refused(with_edges("unknown.nir",
                             [](h5::Writer& w) {
                                 w.write_strings(
                                     "node/edges",
                                     std::vector<std::string>{"input", "output", "input", "ghost"},
                                     {2, 2});
                             }),
                  "/node/edges: edge 1 ('input' -> 'ghost'): target 'ghost' is not a node of "
                  "/node/nodes");
    check_refused(with_edges("noedges.nir", [](h5::Writer&) {}), "/node: a NIRGraph needs `edges`");
}

TEST_CASE("nir read refuses a NIRGraph node without nodes, enum data, and cycles of links") {
    ScratchDir dir;
    {
        h5::Writer w(dir / "nonodes.nir");
        write_minimal(w);
        w.write_strings("node/nodes/sub/type", std::vector<std::string>{"NIRGraph"}, {});
        w.write_strings("node/nodes/sub/edges", std::vector<std::string>{}, {0, 2});
        w.write_strings("node/edges", std::vector<std::string>{}, {0, 2});
        w.commit();
    }
    check_refused(dir / "nonodes.nir", "/node/nodes/sub: a NIRGraph needs a group `nodes`");

    const auto make_base = [&](const std::string& name) {
        h5::Writer w(dir / name);
        write_minimal(w);
        w.write_strings("node/edges", std::vector<std::string>{}, {0, 2});
        w.write_strings("node/nodes/sub/type", std::vector<std::string>{"NIRGraph"}, {});
        w.write_strings("node/nodes/sub/edges", std::vector<std::string>{}, {0, 2});
        w.group("node/nodes/sub/nodes");
        w.commit();
        return dir / name;
    };
    {  // a numpy bool, as h5py stores it: an enum over int8
        const auto file = make_base("bool.nir");
        CFile f(file);
        const hid_t type = H5Tenum_create(H5T_NATIVE_INT8);
        std::int8_t no = 0, yes = 1;
        H5Tenum_insert(type, "FALSE", &no);
        H5Tenum_insert(type, "TRUE", &yes);
        const hid_t space = H5Screate(H5S_SCALAR);
        const hid_t ds = H5Dcreate2(f.id, "/node/nodes/input/flag", type, space, H5P_DEFAULT,
                                    H5P_DEFAULT, H5P_DEFAULT);
        REQUIRE(ds >= 0);
        REQUIRE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &yes) >= 0);
        H5Dclose(ds);
        H5Sclose(space);
        H5Tclose(type);
    }
    check_refused(dir / "bool.nir", "/node/nodes/input/flag has a non-numeric element type");
    {  // a subgraph whose nodes hold a hard link back to the subgraph itself
        const auto file = make_base("cycle.nir");
        CFile f(file);
        REQUIRE(H5Lcreate_hard(f.id, "/node/nodes/sub", f.id, "/node/nodes/sub/nodes/loop",
                               H5P_DEFAULT, H5P_DEFAULT) >= 0);
    }
    check_refused(dir / "cycle.nir", "nested deeper than 64 levels");
}

TEST_CASE("nir unknown node types read like any other node") {
    ScratchDir dir;
    {
        h5::Writer w(dir / "unknown.nir");
        write_minimal(w);
        w.write_strings("node/nodes/x/type", std::vector<std::string>{"QuantumNeuron"}, {});
        w.write<float>("node/nodes/x/spin", std::vector<float>{0.5f, -0.5f}, {2});
        w.write_strings("node/edges", std::vector<std::string>{"input", "x", "x", "output"},
                        {2, 2});
        w.commit();
    }
    const auto g = nir::read(dir / "unknown.nir");
    CHECK(g.find("x")->type == "QuantumNeuron");
    CHECK(field(g, "x", "spin").numbers == doubles({0.5, -0.5}));
}

// ---------------------------------------------------------------------------------------------
// Writer rules and Value helpers

TEST_CASE("nir write refuses graphs that break the layout's rules, before creating the file") {
    ScratchDir dir;
    const auto file = dir / "bad.nir";
    const auto refuses = [&](const nir::Graph& g, const std::string& text) {
        CAPTURE(text);
        CHECK_THROWS_WITH_AS(nir::write(file, g), doctest::Contains(text.c_str()), ConfigError);
        CHECK_FALSE(std::filesystem::exists(file));
    };
    using nir::Value;
    const auto base = evformer::test::sample_graph();
    auto g = base;
    g.nodes.push_back(g.nodes.front());
    refuses(g, "two nodes are called 'conv.0'");
    g = base;
    g.nodes[1].name = "a/b";
    refuses(g, "node name 'a/b'");
    g = base;
    g.nodes[1].name = "";
    refuses(g, "node name ''");
    g = base;
    g.nodes[1].type = "";
    refuses(g, "empty node type");
    g = base;
    g.nodes[4].graph = nullptr;
    refuses(g, "a NIRGraph node needs its graph");
    g = base;
    g.nodes[1].graph = std::make_shared<nir::Graph>();
    refuses(g, "only a NIRGraph node may carry a graph");
    g = base;
    g.nodes[1].fields["type"] = Value::text("x");
    refuses(g, "may not be called 'type'");
    g = base;
    g.nodes[4].fields["edges"] = Value::text("x");
    refuses(g, "may not be called 'edges'");
    g = base;
    g.edges.emplace_back("input", "nowhere");
    refuses(g, "target 'nowhere' is not a node of /node/nodes");
    g = base;
    g.nodes[1].fields["shape"].numbers.push_back(1);
    refuses(g, "/node/nodes/input/shape: 4 numbers for shape (3,)");
    g = base;
    g.nodes[1].fields["shape"].numbers[0] = 1.5;
    refuses(g, "element 0 (1.5) does not fit i64");
    g = base;
    g.nodes[0].fields["padding"].strings[0] = std::string("a\0b", 3);
    refuses(g, "contains a NUL byte");
    g = base;
    g.fields["metadata"].fields["bad/key"] = Value::scalar(1);
    refuses(g, "field name 'bad/key'");
    CHECK_THROWS_AS(nir::write(file, base, {.gzip_level = 10}), ConfigError);
}

TEST_CASE("nir Value helpers build, describe and check values") {
    using nir::Value;
    const auto f = Value::array({2}, {0.1, 3.0}, h5::DType::f32);
    CHECK(f.numbers[0] == static_cast<double>(0.1f));  // rounded to the dtype
    CHECK(f.size() == 2);
    CHECK(f.describe() == "f32 (2,)");
    CHECK(Value::scalar(7, h5::DType::i64).as_number() == 7);
    CHECK(Value::text("LIF").as_string() == "LIF");
    CHECK(Value::texts({2}, {"a", "b"}).describe() == "string (2,)");
    CHECK(Value::dict({{"a", Value::scalar(1)}, {"b", Value::text("x")}}).describe() ==
          "dict {a, b}");
    CHECK_THROWS_WITH_AS(Value::scalar(1).as_string(),
                         doctest::Contains("expected one string, found f64 ()"), ConfigError);
    CHECK_THROWS_AS(Value::texts({2}, {"a"}), ConfigError);
    CHECK_THROWS_AS(f.as_number(), ConfigError);
    CHECK_THROWS_AS(Value::array({2}, {1}), ConfigError);
    CHECK_THROWS_AS(Value::scalar(-1, h5::DType::u8), ConfigError);
    CHECK_THROWS_AS(Value::scalar(256, h5::DType::u8), ConfigError);
    CHECK_THROWS_AS(Value::scalar(0.5, h5::DType::i32), ConfigError);
    CHECK_THROWS_AS(Value::scalar(9.3e18, h5::DType::i64), ConfigError);
    CHECK_THROWS_AS(Value::scalar(1e39, h5::DType::f32), ConfigError);
    CHECK(Value::scalar(std::nan(""), h5::DType::f32) ==
          Value::scalar(std::nan(""), h5::DType::f32));
    CHECK_FALSE(Value::scalar(1, h5::DType::f32) == Value::scalar(1, h5::DType::f64));
    CHECK_FALSE(Value::text("1") == Value::scalar(1));
}
