// cudasim: a CUDA driver and NVRTC that run kernels on the CPU, for testing the CUDA backend on
// machines without a GPU. Built as one shared object that stands in for libcuda.so.1 and
// libnvrtc.so (tools/cudasim/run.sh puts it first on LD_LIBRARY_PATH), so the unchanged test
// binaries load it through cudarc's dynamic loading.
//
// - NVRTC: `nvrtcCompileProgram` rewrites the source (inline PTX into calls, dynamic shared
//   memory into a pointer), prepends sim_device.h and compiles it with g++ into a shared object;
//   the "PTX" it hands back names that object (and lists `.entry` lines, as PTX would).
// - Driver: device memory is host memory (each buffer ends at a guard page and starts filled
//   with 0xff bytes, NaN as f32); streams run their work at once, in order; a capturing stream
//   records launches, copies and memsets as a graph instead of running them, and refuses what a
//   real capture refuses (pageable copies, synchronising, allocating); graphs replay the
//   recorded arguments. Launches check block sizes and dynamic shared memory like the driver.
//
// A test tool, not part of the product: see tools/cudasim/README.md.

#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct LaunchDims {
    unsigned grid[3];
    unsigned block[3];
    unsigned dynamic_shared;
    unsigned order;
    unsigned seed;
    char* error;
};

typedef int CUresult;
enum : int {
    OK = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    NO_DEVICE = 100,
    INVALID_DEVICE = 101,
    INVALID_IMAGE = 200,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    LAUNCH_FAILED = 719,
    NOT_SUPPORTED = 801,
    CAPTURE_UNSUPPORTED = 900,
    CAPTURE_INVALIDATED = 901,
    CAPTURE_WRONG_THREAD = 908,
    ILLEGAL_STATE = 401,
};

std::recursive_mutex& lock() {
    static std::recursive_mutex m;
    return m;
}

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cudasim: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

// ---------------------------------------------------------------------------------------------
// Device memory

struct Allocation {
    char* map;
    size_t map_len;
    size_t bytes;
};

std::map<uintptr_t, Allocation>& allocations() {
    static std::map<uintptr_t, Allocation> a;
    return a;
}

size_t live_bytes = 0;

// The device memory cudasim reports (allocations are host memory; this only sizes the answers).
constexpr size_t TOTAL_MEMORY = (size_t)16 << 30;

CUresult device_alloc(uint64_t* out, size_t bytes) {
    if (!out) return INVALID_VALUE;
    const size_t rounded = ((bytes ? bytes : 1) + 255) & ~(size_t)255;
    const size_t page = 4096;
    const size_t map_len = ((rounded + page - 1) & ~(page - 1)) + page;
    char* map = (char*)mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return OUT_OF_MEMORY;
    mprotect(map + map_len - page, page, PROT_NONE);
    char* p = map + map_len - page - rounded;
    memset(p, 0xff, rounded);
    allocations()[(uintptr_t)p] = {map, map_len, bytes};
    live_bytes += bytes;
    *out = (uint64_t)(uintptr_t)p;
    return OK;
}

CUresult device_free(uint64_t p) {
    auto& a = allocations();
    auto it = a.find((uintptr_t)p);
    if (it == a.end()) {
        say("free of %#lx, which is not an allocation", (unsigned long)p);
        return INVALID_VALUE;
    }
    live_bytes -= it->second.bytes;
    munmap(it->second.map, it->second.map_len);
    a.erase(it);
    return OK;
}

// True when [p, p + bytes) lies inside one of the ranges of `m` (keyed by start; `len` gives a
// range's length).
template <class M, class Len>
bool inside(const M& m, uintptr_t p, size_t bytes, Len len) {
    auto it = m.upper_bound(p);
    if (it == m.begin()) return false;
    --it;
    return p + bytes <= it->first + len(it->second);
}

// True when [p, p + bytes) lies inside one allocation.
bool device_range(uint64_t p, size_t bytes) {
    return inside(allocations(), (uintptr_t)p, bytes, [](const Allocation& a) { return a.bytes; });
}

bool is_device(const void* p) { return device_range((uint64_t)(uintptr_t)p, 0); }

std::map<uintptr_t, size_t>& pinned() {
    static std::map<uintptr_t, size_t> m;
    return m;
}

bool is_pinned(const void* p, size_t bytes) {
    return inside(pinned(), (uintptr_t)p, bytes, [](size_t len) { return len; });
}

// ---------------------------------------------------------------------------------------------
// Modules and functions

struct Module {
    void* handle;
};

struct Function {
    std::string name;
    int (*launch)(const LaunchDims*, void**);
    std::vector<unsigned long> arg_sizes;
    int max_dynamic_shared = 48 * 1024;
};

// ---------------------------------------------------------------------------------------------
// Work: what a stream runs, or a graph records

struct Work {
    enum Kind { KERNEL, COPY, SET } kind;
    Function* f = nullptr;
    unsigned grid[3] = {1, 1, 1}, block[3] = {1, 1, 1}, shared = 0;
    std::vector<char> args;  // the argument values, packed at `offsets`
    std::vector<size_t> offsets;
    void* dst = nullptr;
    const void* src = nullptr;
    size_t bytes = 0;
    unsigned char value = 0;
};

unsigned read_schedule_order() {
    const char* s = getenv("T0SIM_ORDER");
    if (!s || !strcmp(s, "forward")) return 0;
    if (!strcmp(s, "reverse")) return 1;
    if (!strcmp(s, "shuffle")) return 2;
    if (!strcmp(s, "warps")) return 3;
    if (!strcmp(s, "warps-reverse")) return 4;
    say("T0SIM_ORDER=%s: not one of forward, reverse, shuffle, warps, warps-reverse", s);
    abort();
}

// T0SIM_ORDER, read once.
unsigned schedule_order() {
    static const unsigned order = read_schedule_order();
    return order;
}

unsigned launch_seed = 1;

CUresult run(const Work& w) {
    switch (w.kind) {
    case Work::COPY:
        memmove(w.dst, w.src, w.bytes);
        return OK;
    case Work::SET:
        memset(w.dst, w.value, w.bytes);
        return OK;
    case Work::KERNEL: {
        std::vector<void*> params(w.offsets.size());
        for (size_t i = 0; i < w.offsets.size(); ++i) params[i] = (void*)(w.args.data() + w.offsets[i]);
        char error[512];
        LaunchDims d = {{w.grid[0], w.grid[1], w.grid[2]}, {w.block[0], w.block[1], w.block[2]}, w.shared,
                        schedule_order(), launch_seed++, error};
        if (w.f->launch(&d, params.data()) != 0) {
            say("kernel %s failed: %s", w.f->name.c_str(), error);
            return LAUNCH_FAILED;
        }
        return OK;
    }
    }
    return INVALID_VALUE;
}

struct Graph {
    std::vector<Work> work;
};

struct Stream {
    bool capturing = false;
    bool invalidated = false;
    std::thread::id capturer;
    Graph* graph = nullptr;
};

Stream legacy_stream;

Stream* stream_of(void* s) { return s ? (Stream*)s : &legacy_stream; }

// The stream this thread is capturing, if any (for the calls a capture forbids).
thread_local Stream* capturing_here = nullptr;

// What a refused call does to the capture it is part of: invalidates it.
CUresult invalidate(Stream* st, const char* what, const char* why) {
    say("%s %s (the capture is invalidated)", what, why);
    st->invalidated = true;
    return CAPTURE_UNSUPPORTED;
}

// Calls a thread that is capturing may not make (they synchronise or allocate).
CUresult forbidden_in_capture(const char* what) {
    return capturing_here ? invalidate(capturing_here, what, "while this thread captures a stream") : OK;
}

// Work a capturing stream cannot take (synchronising on it; stream-ordered allocation, which
// cudasim does not model).
CUresult refused_in_capture(void* s, const char* what) {
    return stream_of(s)->capturing ? invalidate(stream_of(s), what, "on a capturing stream") : OK;
}

CUresult submit(void* s, Work w) {
    Stream* st = stream_of(s);
    if (st->capturing) {
        if (st->invalidated) return CAPTURE_INVALIDATED;
        st->graph->work.push_back(std::move(w));
        return OK;
    }
    return run(w);
}

CUresult copy(void* dst, const void* src, size_t bytes, void* s, bool async, const char* what) {
    const bool dst_dev = is_device(dst), src_dev = is_device(src);
    if ((dst_dev && !device_range((uint64_t)(uintptr_t)dst, bytes)) ||
        (src_dev && !device_range((uint64_t)(uintptr_t)src, bytes))) {
        say("%s of %zu bytes runs past the end of a device buffer", what, bytes);
        return INVALID_VALUE;
    }
    if (!async) {
        if (CUresult r = forbidden_in_capture(what)) return r;
    }
    Stream* st = stream_of(s);
    if (st->capturing) {
        const void* host = dst_dev ? src : dst;
        if (!(dst_dev && src_dev) && !is_pinned(host, bytes))
            return invalidate(st, what, "from or to pageable host memory in a capture (a real capture refuses it)");
    }
    Work w;
    w.kind = Work::COPY;
    w.dst = dst;
    w.src = src;
    w.bytes = bytes;
    return submit(s, std::move(w));
}

// ---------------------------------------------------------------------------------------------
// NVRTC

struct Program {
    std::string src, name, log, ptx;
};

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string here() {
    Dl_info info;
    dladdr((void*)&here, &info);
    std::string p = info.dli_fname ? info.dli_fname : "";
    // Resolve the library-name symlinks to the real file's folder.
    char buf[4096];
    if (realpath(p.c_str(), buf)) p = buf;
    return p.substr(0, p.rfind('/'));
}

// The position of the quote that closes the string literal opening at `open` (or the end).
size_t literal_end(const std::string& s, size_t open) {
    size_t i = open + 1;
    for (; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
    return i;
}

// Position just past the parenthesised group that starts at `open` (skipping string literals).
size_t match_paren(const std::string& s, size_t open) {
    int depth = 0;
    for (size_t i = open; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '"') {
            i = literal_end(s, i);
        } else if (c == '(') {
            ++depth;
        } else if (c == ')') {
            if (--depth == 0) return i + 1;
        }
    }
    return std::string::npos;
}

// Splits `s` at top-level occurrences of `sep` (outside parentheses and strings).
std::vector<std::string> split_top(const std::string& s, char sep) {
    std::vector<std::string> out;
    int depth = 0;
    std::string cur;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '"') {
            const size_t j = literal_end(s, i);
            cur += s.substr(i, j - i + 1);
            i = j;
            continue;
        }
        if (c == '(') ++depth;
        if (c == ')') --depth;
        if (c == sep && depth == 0) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}

std::string trim(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t\n\r");
    if (a == std::string::npos) return "";
    const size_t b = s.find_last_not_of(" \t\n\r");
    return s.substr(a, b - a + 1);
}

// The concatenated string literals of an asm template.
std::string literal_text(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '"') continue;
        for (++i; i < s.size() && s[i] != '"'; ++i) {
            if (s[i] == '\\' && i + 1 < s.size()) {
                ++i;
                out += s[i] == 'n' ? '\n' : (s[i] == 't' ? '\t' : s[i]);
            } else {
                out += s[i];
            }
        }
    }
    return out;
}

// One inline-PTX statement turned into C++, or an error.
bool rewrite_asm(const std::string& body, std::string& out, std::string& err) {
    auto parts = split_top(body, ':');
    const std::string tmpl = trim(literal_text(parts[0]));
    std::vector<std::string> operands;  // %N → C++ expression
    for (size_t p = 1; p < parts.size() && p <= 2; ++p) {
        for (auto& op : split_top(parts[p], ',')) {
            const std::string t = trim(op);
            if (t.empty()) continue;
            const size_t open = t.find('(');
            operands.push_back(t.substr(open));
        }
    }
    // Operand numbers in the order the template names them.
    std::vector<int> order;
    for (size_t i = 0; i + 1 < tmpl.size(); ++i)
        if (tmpl[i] == '%' && isdigit((unsigned char)tmpl[i + 1])) order.push_back(atoi(tmpl.c_str() + i + 1));
    auto op = [&](size_t i) -> std::string {
        if (i >= order.size() || order[i] < 0 || (size_t)order[i] >= operands.size()) return "(0)";
        return operands[order[i]];
    };
    const std::string opcode = tmpl.substr(0, tmpl.find_first_of(" \t"));
    if (opcode == "cvt.f32.f16" && order.size() == 2) {
        out = op(0) + " = t0sim::f16_to_f32((unsigned short)" + op(1) + ");";
        return true;
    }
    if (opcode == "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" && order.size() == 14) {
        std::ostringstream o;
        o << "{ float t0d[4]; const unsigned t0a[4] = {" << op(4) << ", " << op(5) << ", " << op(6) << ", "
          << op(7) << "}; const unsigned t0b[2] = {" << op(8) << ", " << op(9) << "}; const float t0c[4] = {"
          << op(10) << ", " << op(11) << ", " << op(12) << ", " << op(13)
          << "}; t0sim::mma_m16n8k16_bf16(t0d, t0a, t0b, t0c); ";
        for (int i = 0; i < 4; ++i) o << op(i) << " = t0d[" << i << "]; ";
        o << "}";
        out = o.str();
        return true;
    }
    err = "cudasim: unsupported inline PTX `" + tmpl + "` (add it to tools/cudasim/cudasim.cpp)";
    return false;
}

bool rewrite_source(const std::string& in, std::string& out, std::vector<std::string>& kernels, std::string& err) {
    std::string s;
    // Inline PTX.
    static const std::regex asm_re(R"(\basm\s*(volatile\s*)?\()");
    std::smatch m;
    std::string rest = in;
    while (std::regex_search(rest, m, asm_re)) {
        const size_t start = m.position(0);
        const size_t open = start + m.length(0) - 1;
        const size_t close = match_paren(rest, open);
        if (close == std::string::npos) {
            err = "cudasim: unbalanced asm statement";
            return false;
        }
        std::string repl;
        if (!rewrite_asm(rest.substr(open + 1, close - open - 2), repl, err)) return false;
        s += rest.substr(0, start);
        s += repl;
        size_t after = close;
        while (after < rest.size() && isspace((unsigned char)rest[after])) ++after;
        if (after < rest.size() && rest[after] == ';') ++after;
        rest = rest.substr(after);
    }
    s += rest;
    // Dynamic shared memory.
    static const std::regex dyn_re(R"(extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?(\w+)\s+(\w+)\s*\[\s*\]\s*;)");
    s = std::regex_replace(s, dyn_re, "$1* const $2 = ($1*)t0sim::g_dyn_shared;");
    // Kernels.
    static const std::regex kernel_re(R"(extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\()");
    for (auto it = std::sregex_iterator(s.begin(), s.end(), kernel_re); it != std::sregex_iterator(); ++it)
        kernels.push_back((*it)[1]);
    out = s;
    return true;
}

std::string cache_dir() {
    const char* c = getenv("T0SIM_CACHE");
    std::string d = c ? c : "/tmp/t0sim-cache-" + std::to_string(getuid());
    mkdir(d.c_str(), 0755);
    return d;
}

int compile(Program& p, const std::vector<std::string>& options) {
    int arch = 90;
    for (auto& o : options) {
        auto at = o.find("sm_");
        if (o.rfind("--gpu-architecture=", 0) == 0 || o.rfind("-arch=", 0) == 0)
            if (at != std::string::npos) arch = atoi(o.c_str() + at + 3);
    }
    std::string body;
    std::vector<std::string> kernels;
    if (!rewrite_source(p.src, body, kernels, p.log)) return 6;  // NVRTC_ERROR_COMPILATION
    const std::string header = read_file(here() + "/sim_device.h");
    if (header.empty()) {
        p.log = "cudasim: sim_device.h not found beside " + here();
        return 6;
    }
    std::ostringstream src;
    src << "#define __CUDA_ARCH__ " << arch * 10 << "\n" << header << "\n#line 1 \"" << p.name << "\"\n" << body << "\n";
    for (auto& k : kernels) {
        src << "extern \"C\" int t0sim_launch_" << k
            << "(const t0sim::LaunchDims* d, void** p) { return t0sim::launch(" << k << ", d, p); }\n"
            << "extern \"C\" int t0sim_argsizes_" << k << "(unsigned long* s, int cap) { return t0sim::arg_sizes(" << k
            << ", s, cap); }\n";
    }
    const std::string text = src.str();
    const std::string key = std::to_string(std::hash<std::string>{}(text));
    const std::string dir = cache_dir();
    const std::string so = dir + "/" + key + ".so";
    struct stat st;
    if (stat(so.c_str(), &st) != 0) {
        const std::string tmp = dir + "/" + key + "." + std::to_string(getpid()) + "." +
                                std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
        {
            std::ofstream f(tmp + ".cpp");
            f << text;
        }
        const char* cxx = getenv("CXX");
        const std::string cmd = std::string(cxx ? cxx : "g++") +
                                " -std=c++17 -O2 -fPIC -shared -march=native -ffp-contract=fast -w -o " + tmp + ".so " +
                                tmp + ".cpp > " + tmp + ".log 2>&1";
        const int rc = system(cmd.c_str());
        if (rc != 0) p.log = read_file(tmp + ".log");
        else rename((tmp + ".so").c_str(), so.c_str());
        unlink((tmp + ".cpp").c_str());
        unlink((tmp + ".log").c_str());
        if (rc != 0) return 6;
    }
    std::ostringstream ptx;
    ptx << "// cudasim module\n.cudasim " << so << "\n";
    for (auto& k : kernels) ptx << ".entry " << k << "\n";
    p.ptx = ptx.str();
    return 0;
}

}  // namespace

extern "C" {

// ----------------------------------------------------------------------------------- NVRTC
const char* nvrtcGetErrorString(int r) {
    switch (r) {
    case 0: return "NVRTC_SUCCESS";
    case 6: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC_ERROR (cudasim)";
    }
}
int nvrtcVersion(int* major, int* minor) {
    *major = 12;
    *minor = 8;
    return 0;
}
int nvrtcCreateProgram(void** prog, const char* src, const char* name, int, const char* const*, const char* const*) {
    Program* p = new Program;
    p->src = src ? src : "";
    p->name = name ? name : "kernel.cu";
    *prog = p;
    return 0;
}
int nvrtcDestroyProgram(void** prog) {
    delete (Program*)*prog;
    *prog = nullptr;
    return 0;
}
int nvrtcCompileProgram(void* prog, int n, const char* const* opts) {
    std::vector<std::string> options;
    for (int i = 0; i < n; ++i) options.push_back(opts[i]);
    return compile(*(Program*)prog, options);
}
// NVRTC hands out strings as a size call (with the terminating zero) and a copy call.
static int string_size(const std::string& s, size_t* size) {
    *size = s.size() + 1;
    return 0;
}
static int string_copy(const std::string& s, char* out) {
    memcpy(out, s.c_str(), s.size() + 1);
    return 0;
}
int nvrtcGetPTXSize(void* prog, size_t* size) { return string_size(((Program*)prog)->ptx, size); }
int nvrtcGetPTX(void* prog, char* out) { return string_copy(((Program*)prog)->ptx, out); }
int nvrtcGetProgramLogSize(void* prog, size_t* size) { return string_size(((Program*)prog)->log, size); }
int nvrtcGetProgramLog(void* prog, char* out) { return string_copy(((Program*)prog)->log, out); }

// ---------------------------------------------------------------------------------- driver
// The driver's name and message for each code cudasim returns.
struct ErrorText {
    CUresult code;
    const char* name;
    const char* text;
};
static const ErrorText error_texts[] = {
    {OK, "CUDA_SUCCESS", "no error"},
    {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure (cudasim: see stderr)"},
    {CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
    {CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"},
};
static const ErrorText* error_text(CUresult r) {
    for (const ErrorText& e : error_texts)
        if (e.code == r) return &e;
    return nullptr;
}
CUresult cuGetErrorString(CUresult r, const char** s) {
    const ErrorText* e = error_text(r);
    *s = e ? e->text : "cudasim error";
    return OK;
}
CUresult cuGetErrorName(CUresult r, const char** s) {
    const ErrorText* e = error_text(r);
    *s = e ? e->name : "CUDA_ERROR_UNKNOWN";
    return OK;
}
CUresult cuInit(unsigned) { return OK; }
CUresult cuDriverGetVersion(int* v) {
    *v = 12080;
    return OK;
}
CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return OK;
}
CUresult cuDeviceGet(int* dev, int ordinal) {
    if (ordinal != 0) return INVALID_DEVICE;
    *dev = 0;
    return OK;
}
CUresult cuDeviceGetName(char* name, int len, int) {
    snprintf(name, len, "cudasim (CPU)");
    return OK;
}
CUresult cuDeviceTotalMem_v2(size_t* bytes, int) {
    *bytes = TOTAL_MEMORY;
    return OK;
}
CUresult cuDeviceGetAttribute(int* v, int attr, int) {
    const char* cc = getenv("T0SIM_CC");  // e.g. 80
    const int cap = cc ? atoi(cc) : 90;
    switch (attr) {
    case 1: *v = 1024; break;                // max threads per block
    case 8: *v = 48 * 1024; break;           // shared memory per block
    case 10: *v = 32; break;                 // warp size
    case 13: *v = 1980000; break;            // clock kHz
    case 16: *v = 132; break;                // SMs
    case 36: *v = 2619000; break;            // memory clock kHz (H100 SXM-like)
    case 37: *v = 5120; break;               // bus width bits
    case 75: *v = cap / 10; break;
    case 76: *v = cap % 10; break;
    case 97: *v = 227 * 1024; break;         // shared memory per block, opt-in
    case 115: *v = 0; break;                 // memory pools: no (plain allocations)
    default: *v = 0; break;
    }
    return OK;
}
CUresult cuDeviceGetUuid(void* uuid, int) {
    memset(uuid, 0, 16);
    return OK;
}
CUresult cuDeviceGetUuid_v2(void* uuid, int) { return cuDeviceGetUuid(uuid, 0); }

static int the_context;
CUresult cuDevicePrimaryCtxRetain(void** ctx, int) {
    *ctx = &the_context;
    return OK;
}
CUresult cuDevicePrimaryCtxRelease_v2(int) { return OK; }
CUresult cuCtxSetCurrent(void*) { return OK; }
CUresult cuCtxGetCurrent(void** ctx) {
    *ctx = &the_context;
    return OK;
}
CUresult cuCtxGetDevice(int* d) {
    *d = 0;
    return OK;
}
CUresult cuCtxSynchronize() {
    std::lock_guard<std::recursive_mutex> g(lock());
    return forbidden_in_capture("cuCtxSynchronize");
}
CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    std::lock_guard<std::recursive_mutex> g(lock());
    *total = TOTAL_MEMORY;
    *free_bytes = *total > live_bytes ? *total - live_bytes : 0;
    return OK;
}

CUresult cuStreamCreate(void** s, unsigned) {
    *s = new Stream;
    return OK;
}
CUresult cuStreamCreateWithPriority(void** s, unsigned, int) { return cuStreamCreate(s, 0); }
CUresult cuStreamDestroy_v2(void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    Stream* st = (Stream*)s;
    if (st && st->capturing) say("a stream destroyed while capturing");
    delete st;
    return OK;
}
CUresult cuStreamSynchronize(void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (CUresult r = refused_in_capture(s, "cuStreamSynchronize")) return r;
    return forbidden_in_capture("cuStreamSynchronize");
}
CUresult cuStreamQuery(void*) { return OK; }
CUresult cuStreamWaitEvent(void*, void*, unsigned) { return OK; }
CUresult cuStreamGetPriority(void*, int* p) {
    *p = 0;
    return OK;
}
CUresult cuCtxGetStreamPriorityRange(int* lo, int* hi) {
    *lo = 0;
    *hi = 0;
    return OK;
}
CUresult cuStreamBeginCapture_v2(void* s, int) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (!s) return INVALID_VALUE;  // the legacy stream cannot be captured
    Stream* st = (Stream*)s;
    if (st->capturing) return ILLEGAL_STATE;
    st->capturing = true;
    st->invalidated = false;
    st->capturer = std::this_thread::get_id();
    st->graph = new Graph;
    capturing_here = st;
    return OK;
}
CUresult cuStreamEndCapture(void* s, void** graph) {
    std::lock_guard<std::recursive_mutex> g(lock());
    Stream* st = stream_of(s);
    *graph = nullptr;
    if (!st->capturing) return INVALID_VALUE;
    if (st->capturer != std::this_thread::get_id()) return CAPTURE_WRONG_THREAD;
    st->capturing = false;
    capturing_here = nullptr;
    if (st->invalidated) {
        delete st->graph;
        st->graph = nullptr;
        return CAPTURE_INVALIDATED;
    }
    *graph = st->graph;
    st->graph = nullptr;
    return OK;
}
CUresult cuStreamIsCapturing(void* s, int* status) {
    std::lock_guard<std::recursive_mutex> g(lock());
    Stream* st = stream_of(s);
    *status = st->capturing ? (st->invalidated ? 2 : 1) : 0;
    return OK;
}
CUresult cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long) {
    *exec = new Graph(*(Graph*)graph);
    return OK;
}
CUresult cuGraphUpload(void*, void*) { return OK; }
CUresult cuGraphLaunch(void* exec, void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    Stream* st = stream_of(s);
    if (st->capturing) {
        say("cuGraphLaunch into a capturing stream (not modelled)");
        return NOT_SUPPORTED;
    }
    for (const Work& w : ((Graph*)exec)->work)
        if (CUresult r = run(w)) return r;
    return OK;
}
CUresult cuGraphDestroy(void* graph) {
    delete (Graph*)graph;
    return OK;
}
CUresult cuGraphExecDestroy(void* exec) {
    delete (Graph*)exec;
    return OK;
}

CUresult cuEventCreate(void** e, unsigned) {
    *e = new int(0);
    return OK;
}
CUresult cuEventDestroy_v2(void* e) {
    delete (int*)e;
    return OK;
}
CUresult cuEventRecord(void*, void*) { return OK; }
CUresult cuEventRecordWithFlags(void*, void*, unsigned) { return OK; }
CUresult cuEventSynchronize(void*) { return forbidden_in_capture("cuEventSynchronize"); }
CUresult cuEventQuery(void*) { return OK; }
CUresult cuEventElapsedTime(float* ms, void*, void*) {
    *ms = 0.0f;
    return OK;
}
CUresult cuEventElapsedTime_v2(float* ms, void* a, void* b) { return cuEventElapsedTime(ms, a, b); }

CUresult cuMemAlloc_v2(uint64_t* p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (CUresult r = forbidden_in_capture("cuMemAlloc")) return r;
    return device_alloc(p, bytes);
}
CUresult cuMemAllocAsync(uint64_t* p, size_t bytes, void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (CUresult r = refused_in_capture(s, "cuMemAllocAsync")) return r;
    return device_alloc(p, bytes);
}
CUresult cuMemFree_v2(uint64_t p) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (CUresult r = forbidden_in_capture("cuMemFree")) return r;
    return device_free(p);
}
CUresult cuMemFreeAsync(uint64_t p, void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (CUresult r = refused_in_capture(s, "cuMemFreeAsync")) return r;
    return device_free(p);
}
CUresult cuMemAllocHost_v2(void** p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> g(lock());
    *p = malloc(bytes ? bytes : 1);
    pinned()[(uintptr_t)*p] = bytes;
    return OK;
}
CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned) { return cuMemAllocHost_v2(p, bytes); }
CUresult cuMemFreeHost(void* p) {
    std::lock_guard<std::recursive_mutex> g(lock());
    pinned().erase((uintptr_t)p);
    free(p);
    return OK;
}
CUresult cuMemsetD8_v2(uint64_t p, unsigned char v, size_t n) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (CUresult r = forbidden_in_capture("cuMemsetD8")) return r;
    if (!device_range(p, n)) return INVALID_VALUE;
    memset((void*)(uintptr_t)p, v, n);
    return OK;
}
CUresult cuMemsetD8Async(uint64_t p, unsigned char v, size_t n, void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (!device_range(p, n)) return INVALID_VALUE;
    Work w;
    w.kind = Work::SET;
    w.dst = (void*)(uintptr_t)p;
    w.bytes = n;
    w.value = v;
    return submit(s, std::move(w));
}
CUresult cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t n) {
    std::lock_guard<std::recursive_mutex> g(lock());
    return copy((void*)(uintptr_t)dst, src, n, nullptr, false, "cuMemcpyHtoD");
}
CUresult cuMemcpyHtoDAsync_v2(uint64_t dst, const void* src, size_t n, void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    return copy((void*)(uintptr_t)dst, src, n, s, true, "cuMemcpyHtoDAsync");
}
CUresult cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t n) {
    std::lock_guard<std::recursive_mutex> g(lock());
    return copy(dst, (const void*)(uintptr_t)src, n, nullptr, false, "cuMemcpyDtoH");
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, uint64_t src, size_t n, void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    return copy(dst, (const void*)(uintptr_t)src, n, s, true, "cuMemcpyDtoHAsync");
}
CUresult cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t n) {
    std::lock_guard<std::recursive_mutex> g(lock());
    return copy((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n, nullptr, false, "cuMemcpyDtoD");
}
CUresult cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void* s) {
    std::lock_guard<std::recursive_mutex> g(lock());
    return copy((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n, s, true, "cuMemcpyDtoDAsync");
}

CUresult cuModuleLoadData(void** module, const void* image) {
    std::lock_guard<std::recursive_mutex> g(lock());
    const char* text = (const char*)image;
    const char* tag = strstr(text, ".cudasim ");
    if (!tag) {
        say("cuModuleLoadData: not a cudasim module (real PTX cannot run here)");
        return INVALID_IMAGE;
    }
    std::string path(tag + 9);
    path = path.substr(0, path.find('\n'));
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        say("dlopen %s: %s", path.c_str(), dlerror());
        return INVALID_IMAGE;
    }
    *module = new Module{h};
    return OK;
}
CUresult cuModuleUnload(void* module) {
    delete (Module*)module;  // the shared object stays loaded (functions may outlive the module)
    return OK;
}
CUresult cuModuleGetFunction(void** f, void* module, const char* name) {
    std::lock_guard<std::recursive_mutex> g(lock());
    Module* m = (Module*)module;
    auto launch = (int (*)(const LaunchDims*, void**))dlsym(m->handle, (std::string("t0sim_launch_") + name).c_str());
    auto sizes = (int (*)(unsigned long*, int))dlsym(m->handle, (std::string("t0sim_argsizes_") + name).c_str());
    if (!launch || !sizes) return NOT_FOUND;
    Function* fn = new Function;
    fn->name = name;
    fn->launch = launch;
    unsigned long s[64];
    const int n = sizes(s, 64);
    fn->arg_sizes.assign(s, s + n);
    *f = fn;
    return OK;
}
CUresult cuFuncSetAttribute(void* f, int attr, int value) {
    if (attr == 8) ((Function*)f)->max_dynamic_shared = value;  // MAX_DYNAMIC_SHARED_SIZE_BYTES
    return OK;
}
CUresult cuFuncGetAttribute(int* v, int attr, void*) {
    *v = attr == 0 ? 1024 : 0;  // MAX_THREADS_PER_BLOCK
    return OK;
}
CUresult cuFuncSetCacheConfig(void*, int) { return OK; }

CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void* s, void** params, void** extra) {
    std::lock_guard<std::recursive_mutex> g(lock());
    Function* fn = (Function*)f;
    if (extra) {
        say("cuLaunchKernel with `extra` (not modelled)");
        return NOT_SUPPORTED;
    }
    const unsigned long long threads = (unsigned long long)bx * by * bz;
    if (gx == 0 || gy == 0 || gz == 0 || threads == 0 || threads > 1024 || bz > 64 || gy > 65535 || gz > 65535) {
        say("launch of %s with grid (%u,%u,%u) block (%u,%u,%u): invalid", fn->name.c_str(), gx, gy, gz, bx, by, bz);
        return INVALID_VALUE;
    }
    if ((int)shared > fn->max_dynamic_shared) {
        say("launch of %s with %u bytes of dynamic shared memory (at most %d without opting in)", fn->name.c_str(),
            shared, fn->max_dynamic_shared);
        return INVALID_VALUE;
    }
    Work w;
    w.kind = Work::KERNEL;
    w.f = fn;
    w.grid[0] = gx, w.grid[1] = gy, w.grid[2] = gz;
    w.block[0] = bx, w.block[1] = by, w.block[2] = bz;
    w.shared = shared;
    size_t total = 0;
    for (auto sz : fn->arg_sizes) {
        w.offsets.push_back(total);
        total += (sz + 15) & ~(size_t)15;
    }
    w.args.resize(total + 16);
    for (size_t i = 0; i < fn->arg_sizes.size(); ++i) memcpy(w.args.data() + w.offsets[i], params[i], fn->arg_sizes[i]);
    return submit(s, std::move(w));
}
CUresult cuLaunchHostFunc(void* s, void (*fn)(void*), void* data) {
    std::lock_guard<std::recursive_mutex> g(lock());
    if (stream_of(s)->capturing) {
        say("cuLaunchHostFunc in a captured stream (not modelled)");
        return NOT_SUPPORTED;
    }
    fn(data);
    return OK;
}

}  // extern "C"
