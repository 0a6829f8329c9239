#!/usr/bin/env python3
"""scripts/gpu_check/unpack_debs.sh: .deb files into a private root, with no network and no root.

Two tiny packages made here with dpkg-deb --build stand in for fetch_debs.sh's download:
hkfake-dev (a .pc file with prefix=/usr and -I/usr, an hdf5-serial.pc, an absolute link to a
file of its own, and libhkfake.so -> /usr/lib/x86_64-linux-gnu/libhkfake.so.1, which lives in
the other package under /lib: Debian 12's merged-/usr case of libz.so) and hkfake1 (that
library). Checked:
1. pkg-config through ROOT/env.sh (the system's .pc folders hidden) gives ROOT's -I and -L, and
   an rpath (DT_RPATH: --disable-new-dtags) to ROOT's library folders; hdf5.pc is made from
   hdf5-serial.pc; both links point into ROOT and resolve; ROOT/SOURCE names the packages.
2. The same with ar and tar only (no dpkg-deb on PATH).
3. scripts/gpu_check.sh --dry-run --only setup --debs DIR unpacks them into BUILD.deps and its
   report says so.
4. The system is untouched (no file of the packages under /usr, dpkg does not know them), and
   a system folder is refused as ROOT.

usage: test_unpack_debs.py REPO_ROOT
Exits 77 (skip) without dpkg-deb or pkg-config."""
import os
import shutil
import subprocess
import sys
import tempfile

LIB = "usr/lib/x86_64-linux-gnu"


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def check(cond, what, out=""):
    if not cond:
        print(f"FAIL: {what}\n{out}")
        sys.exit(1)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make_deb(tmp, name, files, links, out_dir):
    """files: {path: text}, links: {path: target}; paths relative to /."""
    top = os.path.join(tmp, "pkg_" + name)
    for p, text in files.items():
        write(os.path.join(top, p), text)
    for p, target in links.items():
        os.makedirs(os.path.dirname(os.path.join(top, p)), exist_ok=True)
        os.symlink(target, os.path.join(top, p))
    write(os.path.join(top, "DEBIAN", "control"),
          f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\n"
          "Maintainer: hookformer tests <tests@invalid>\nDescription: unpack_debs.sh test\n")
    r = run(["dpkg-deb", "--root-owner-group", "--build", top,
             os.path.join(out_dir, f"{name}_1.0_amd64.deb")])
    check(r.returncode == 0, f"dpkg-deb --build {name}", r.stdout + r.stderr)


def check_root(root, env_extra=None):
    pc_dir = os.path.join(root, LIB, "pkgconfig")
    check(os.path.isfile(os.path.join(root, "env.sh")), "ROOT/env.sh written")
    check(os.path.isfile(os.path.join(pc_dir, "hdf5.pc")), "hdf5.pc made from hdf5-serial.pc")
    source = open(os.path.join(root, "SOURCE")).read()
    check(source.startswith("2 debs from ") and "hkfake test archive" in source,
          "ROOT/SOURCE: count and the debs' SOURCE line", source)
    # pkg-config through env.sh, with the system's .pc folders out of sight
    env = dict(os.environ, PKG_CONFIG_LIBDIR=pc_dir, **(env_extra or {}))
    env.pop("PKG_CONFIG", None)
    env.pop("PKG_CONFIG_PATH", None)
    sh = (f'. "{root}/env.sh" && "$PKG_CONFIG" --cflags hkfake && "$PKG_CONFIG" --libs hkfake'
          ' && "$PKG_CONFIG" --cflags --libs hdf5 && "$PKG_CONFIG" --variable=prefix hkfake')
    r = run(["bash", "-c", sh], env=env)
    out = r.stdout + r.stderr
    check(r.returncode == 0, "pkg-config through env.sh", out)
    cflags, libs, hdf5, prefix = r.stdout.splitlines()[:4]
    check(f"-I{root}/usr/include/hkfake" in cflags, "hkfake's -I in ROOT", out)
    check("-I/usr/include" not in cflags.replace(root, "ROOT"), "no -I/usr left", out)
    check(f"-L{root}/{LIB}" in libs and "-lhkfake" in libs, "hkfake's -L in ROOT", out)
    check("-Wl,--disable-new-dtags" in libs, "DT_RPATH, so indirect libraries are found", out)
    rpath = [a for a in libs.split() if a.startswith("-Wl,-rpath,")]
    check(rpath and f"{root}/{LIB}" in rpath[0].split(",", 2)[2].split(":")
          and f"{root}/lib/x86_64-linux-gnu" in rpath[0], "rpath to ROOT's library folders", out)
    check(f"-I{root}/usr/include/hdf5/serial" in hdf5
          and f"-L{root}/{LIB}/hdf5/serial" in hdf5, "hdf5.pc in ROOT", out)
    check(prefix == f"{root}/usr", "prefix= rewritten", out)
    # links: within the package, and across packages into /lib (merged /usr)
    so = os.path.join(root, LIB, "libhkfake.so")
    check(os.readlink(so) == os.path.join(root, "lib/x86_64-linux-gnu/libhkfake.so.1")
          and open(so).read() == "lib\n", "libhkfake.so points into ROOT's /lib", os.readlink(so))
    doc = os.path.join(root, "usr/share/doc/hkfake-dev/README")
    check(os.readlink(doc) == os.path.join(root, "usr/share/hkfake/README")
          and open(doc).read() == "readme\n", "a package's own absolute link into ROOT",
          os.readlink(doc))


def main():
    root_dir = sys.argv[1]
    if not shutil.which("dpkg-deb") or not shutil.which("pkg-config"):
        print("skip: needs dpkg-deb and pkg-config")
        return 77
    unpack = os.path.join(root_dir, "scripts", "gpu_check", "unpack_debs.sh")
    with tempfile.TemporaryDirectory() as tmp:
        debs = os.path.join(tmp, "debs")
        os.makedirs(debs)
        make_deb(tmp, "hkfake-dev", {
            f"{LIB}/pkgconfig/hkfake.pc":
                "prefix=/usr\nlibdir=${prefix}/lib/x86_64-linux-gnu\n"
                "Name: hkfake\nDescription: test\nVersion: 1.0\n"
                "Cflags: -I/usr/include/hkfake\nLibs: -L${libdir} -lhkfake\n",
            f"{LIB}/pkgconfig/hdf5-serial.pc":
                "Name: HDF5\nDescription: test\nVersion: 1.10.8\n"
                "Cflags: -I/usr/include/hdf5/serial\n"
                "Libs: -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5\n",
            "usr/include/hkfake/hkfake.h": "int hkfake(void);\n",
            "usr/include/hdf5/serial/hdf5.h": "\n",
            "usr/share/hkfake/README": "readme\n",
        }, {
            f"{LIB}/libhkfake.so": "/usr/lib/x86_64-linux-gnu/libhkfake.so.1",
            "usr/share/doc/hkfake-dev/README": "/usr/share/hkfake/README",
        }, debs)
        make_deb(tmp, "hkfake1", {"lib/x86_64-linux-gnu/libhkfake.so.1": "lib\n"}, {}, debs)
        write(os.path.join(debs, "SOURCE"), "hkfake test archive\n")

        # 1. dpkg-deb -x
        root = os.path.join(tmp, "root")
        r = run([unpack, debs, root])
        check(r.returncode == 0, f"unpack_debs.sh exit {r.returncode}", r.stdout + r.stderr)
        check_root(root)

        # 2. ar and tar only: a PATH of links to the tools it uses, dpkg-deb not among them
        shim = os.path.join(tmp, "shim")
        os.makedirs(shim)
        for tool in ["bash", "sh", "env", "ar", "tar", "xz", "zstd", "gzip", "find", "sed",
                     "readlink", "ln", "ls", "wc", "mkdir", "cat", "chmod", "head", "cp", "rm",
                     "basename", "dirname", "grep", "pkg-config", "pkgconf"]:
            p = shutil.which(tool)
            if p:
                os.symlink(p, os.path.join(shim, tool))
        root2 = os.path.join(tmp, "root2")
        r = run(["bash", unpack, debs, root2], env=dict(os.environ, PATH=shim))
        check(r.returncode == 0, f"unpack_debs.sh without dpkg-deb exit {r.returncode}",
              r.stdout + r.stderr)
        check_root(root2)

        # 3. gpu_check.sh's setup part with --debs, in a dry run
        build = os.path.join(tmp, "b")
        report = os.path.join(tmp, "report.md")
        r = run([os.path.join(root_dir, "scripts", "gpu_check.sh"), "--dry-run", "--no-peers",
                 "--only", "setup", "--build", build, "--report", report, "--debs", debs])
        out = r.stdout + r.stderr
        text = open(report).read() if os.path.exists(report) else ""
        check(f"unpacked 2 debs from {debs} (hkfake test archive) into {build}.deps" in text,
              "the report's setup line names the unpacked debs", out + text)
        check("| setup |" in text and "unpacked 2 debs" in text.split("| setup |")[1].split("\n")[0],
              "the summary row says unpacked", text)
        check(os.path.isfile(os.path.join(build + ".deps", "env.sh")), "BUILD.deps/env.sh", out)
        r = run([os.path.join(root_dir, "scripts", "gpu_check.sh"), "--dry-run", "--only", "setup",
                 "--build", build, "--debs", os.path.join(tmp, "shim")])
        check(r.returncode == 2 and "holds no .deb files" in r.stderr,
              "--debs without .deb files is a usage error", r.stdout + r.stderr)

        # 4. nothing on the system, and no system folder as the root
        for p in [f"/{LIB}/pkgconfig/hkfake.pc", "/usr/include/hkfake",
                  "/lib/x86_64-linux-gnu/libhkfake.so.1", "/usr/share/hkfake"]:
            check(not os.path.lexists(p), f"{p} not on the system")
        if shutil.which("dpkg-query"):
            r = run(["dpkg-query", "-W", "hkfake-dev"])
            check(r.returncode != 0, "dpkg does not know the package", r.stdout)
        r = run([unpack, debs, "/usr"])
        check(r.returncode == 1 and "will not unpack" in r.stderr, "ROOT=/usr refused",
              r.stdout + r.stderr)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
