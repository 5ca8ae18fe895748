# The bundled package set: a small nixpkgs-shaped set built offline from this
# machine's Debian packages (scripts/apt-packages.txt installs them).
#
# Every ELF program is copied into its own store path and patched to load its
# interpreter and libraries from store paths only (glibc, zlib, openssl and
# ncurses are shared library packages; other libraries go into the package's
# own lib/), so `nix-store -qR` shows real references and an image holding just
# the closure runs.
#
# Attributes: hello bashInteractive (and bash) coreutils moreutils nano cacert
# iana-etc curl git gitMinimal jq openssl python3 htop busybox glibc zlib
# ncurses xorg.xev _7zz slow.
#
# For system aarch64-linux the same attributes come from Debian's arm64
# packages (scripts/setup-arm64.sh unpacks them; lib.nix names the tree), built
# by that tree's busybox under qemu user emulation. Host paths below are
# written "${root}/..." where the files depend on the architecture (root is ""
# on the host), and left as they are for arch-independent data.
{ system ? builtins.currentSystem }:
let
  lib = import ./lib.nix { inherit system; };
  inherit (lib.debian) root triplet debArch loader;

  # A Debian-derived package linked against glibc (always) and `libDeps`.
  mk = args@{ libDeps ? [ ], ... }:
    lib.mkDebPackage (args // {
      libDeps = [ glibc ] ++ libDeps;
      env = (args.env or { }) // { inherit glibc; };
    });

  # Copies the listed host files into $out/bin.
  copyBins = files: ''
    mkdir -p "$out/bin"
    for f in ${toString files}; do cp -L "$f" "$out/bin/"; done
  '';

  slowRaw = if builtins.pathExists ./slow-seconds then builtins.readFile ./slow-seconds else "0";
  slowMatch = builtins.match "[^0-9]*([0-9]+).*" slowRaw;
  slowSeconds = if slowMatch == null then "0" else builtins.head slowMatch;

  glibc = lib.mkDebPackage {
    pname = "glibc";
    deb = "libc6";
    noPatch = true;
    install = ''
      mkdir -p "$out/lib"
      grep -E '^(/usr)?/lib/${triplet}/[^/]+\.so[^/]*$' ${root}/var/lib/dpkg/info/libc6:${debArch}.list |
        while read -r f; do cp -L "${root}$f" "$out/lib/"; done
      test -e "$out/lib/${loader}"
    '';
  };

  zlib = mk {
    pname = "zlib";
    deb = "zlib1g";
    install = ''
      mkdir -p "$out/lib"
      cp -L ${root}/lib/${triplet}/libz.so.1 "$out/lib/"
    '';
  };

  openssl = mk {
    pname = "openssl";
    deb = "libssl3";
    install = ''
      mkdir -p "$out/lib" "$out/bin"
      cp -L ${root}/usr/lib/${triplet}/libssl.so.3 ${root}/usr/lib/${triplet}/libcrypto.so.3 "$out/lib/"
      cp -L ${root}/usr/bin/openssl "$out/bin/"
    '';
  };

  ncurses = mk {
    pname = "ncurses";
    deb = "libncursesw6";
    install = ''
      mkdir -p "$out/lib" "$out/share"
      for l in libncursesw.so.6 libtinfo.so.6 libncurses.so.6 libformw.so.6 libmenuw.so.6 libpanelw.so.6; do
        cp -L "${root}/lib/${triplet}/$l" "$out/lib/"
      done
      cp -rL /lib/terminfo "$out/share/terminfo"
    '';
  };

  bashInteractive = mk {
    pname = "bash-interactive";
    deb = "bash";
    libDeps = [ ncurses ];
    install = ''
      ${copyBins [ "${root}/bin/bash" ]}
      ln -s bash "$out/bin/sh"
    '';
  };

  pkgs = {
    inherit glibc zlib openssl ncurses bashInteractive;
    bash = bashInteractive;

    hello = mk {
      pname = "hello";
      install = copyBins [ "${root}/usr/bin/hello" ];
    };

    coreutils = mk {
      pname = "coreutils";
      install = ''
        mkdir -p "$out/bin"
        grep -E '/s?bin/[^/]+$' ${root}/var/lib/dpkg/info/coreutils.list | while read -r f; do
          if [ -L "${root}$f" ]; then ln -s "$(readlink "${root}$f")" "$out/bin/$(basename "$f")"; else cp "${root}$f" "$out/bin/"; fi
        done
      '';
    };

    moreutils = mk {
      pname = "moreutils";
      install = ''
        mkdir -p "$out/bin"
        grep -E '/s?bin/[^/]+$' ${root}/var/lib/dpkg/info/moreutils.list | while read -r f; do
          if [ "$(dd if="${root}$f" bs=4 count=1 2>/dev/null | tail -c 3)" = ELF ]; then cp "${root}$f" "$out/bin/"; fi
        done
      '';
    };

    nano = mk {
      pname = "nano";
      libDeps = [ ncurses ];
      install = copyBins [ "${root}/bin/nano" ];
    };

    htop = mk {
      pname = "htop";
      libDeps = [ ncurses ];
      install = copyBins [ "${root}/usr/bin/htop" ];
    };

    jq = mk {
      pname = "jq";
      install = copyBins [ "${root}/usr/bin/jq" ];
    };

    curl = mk {
      pname = "curl";
      libDeps = [ zlib openssl ];
      install = copyBins [ "${root}/usr/bin/curl" ];
    };

    git = mk {
      pname = "git";
      libDeps = [ zlib openssl pkgs.curl ];
      install = ''
        ${copyBins [ "${root}/usr/bin/git" ]}
        mkdir -p "$out/libexec" "$out/share/git-core"
        cp -RP ${root}/usr/lib/git-core "$out/libexec/git-core"
        rm "$out/libexec/git-core/git"
        ln -s ../../bin/git "$out/libexec/git-core/git"
        # programs that need perl, tcl or a web server are left out
        rm -f "$out/libexec/git-core/git-instaweb" "$out/libexec/git-core/git-http-backend" \
              "$out/libexec/git-core/git-daemon" "$out/libexec/git-core/git-http-push" \
              "$out/libexec/git-core/git-imap-send" "$out/libexec/git-core/git-add--interactive"
        cp -r ${root}/usr/share/git-core/templates "$out/share/git-core/templates"
      '';
    };

    gitMinimal = mk {
      pname = "git-minimal";
      deb = "git";
      libDeps = [ zlib ];
      install = copyBins [ "${root}/usr/bin/git" ];
    };

    python3 = mk {
      pname = "python3";
      deb = "python3.11-minimal";
      libDeps = [ zlib openssl ncurses ];
      install = ''
        ${copyBins [ "${root}/usr/bin/python3.11" ]}
        ln -s python3.11 "$out/bin/python3"
        ln -s python3 "$out/bin/python"
        # The standard library as Debian's two library packages ship it, and
        # nothing else a machine may have added to /usr/lib/python3.11 (dev
        # files, distutils, venv: other packages, other contents).
        for p in libpython3.11-minimal libpython3.11-stdlib; do
          grep -E '^/usr/lib/python3\.11/' "${root}/var/lib/dpkg/info/$p:${debArch}.list" |
            grep -vE '^/usr/lib/python3\.11/(config-3\.11-${triplet}|idlelib|turtledemo|tkinter|ensurepip|lib2to3|pydoc_data)(/|$)' |
            while IFS= read -r f; do
              d="$out/lib/''${f#/usr/lib/}"
              if [ -d "${root}$f" ] && [ ! -L "${root}$f" ]; then mkdir -p "$d"; else mkdir -p "$(dirname "$d")"; cp -P "${root}$f" "$d"; fi
            done
        done
      '';
    };

    busybox = lib.mkDebPackage {
      pname = "busybox";
      deb = "busybox-static";
      noPatch = true;
      install = copyBins [ "${root}/bin/busybox" ];
    };

    cacert = lib.mkDebPackage {
      pname = "nss-cacert";
      deb = "ca-certificates";
      version = lib.hostDebVersion "ca-certificates";
      noPatch = true;
      install = ''
        mkdir -p "$out/etc/ssl/certs"
        cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-bundle.crt"
      '';
    };

    iana-etc = lib.mkDebPackage {
      pname = "iana-etc";
      deb = "netbase";
      version = lib.hostDebVersion "netbase";
      noPatch = true;
      install = ''
        mkdir -p "$out/etc"
        cp -L /etc/services /etc/protocols "$out/etc/"
      '';
    };

    # Nested set, for dotted names ("xorg.xev").
    xorg = {
      xev = lib.mkScript {
        pname = "xev";
        version = "1.2.5";
        shell = bashInteractive;
        text = ''echo "xev: no X server here"'';
      };
    };

    # Attribute names cannot start with a digit: nixpkgs writes "7zz" as _7zz.
    _7zz = lib.mkScript {
      pname = "7zz";
      version = "22.01";
      shell = bashInteractive;
      text = ''echo "7-Zip (stub) 22.01"'';
    };

    # Takes `nix/pkgs/slow-seconds` seconds to build; any change of that file's
    # text (e.g. "3 <nonce>") makes a new derivation, so tests get a fresh build.
    slow = derivation {
      name = "slow-1.0";
      pname = "slow";
      version = "1.0";
      inherit system;
      shell = bashInteractive;
      builder = lib.busybox;
      args = [ "sh" "-c" ''
        # slow-seconds: ${builtins.replaceStrings [ "\n" "\r" ] [ " " " " ] slowRaw}
        ${lib.busybox} sleep ${slowSeconds}
        ${lib.busybox} mkdir -p "$out/bin"
        printf '#!%s/bin/sh\necho slow\n' "$shell" > "$out/bin/slow"
        ${lib.busybox} chmod 555 "$out/bin/slow"
        :
      '' ];
    };
  };
in
pkgs
