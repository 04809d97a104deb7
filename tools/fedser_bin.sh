# Sourced by the measurement scripts (after they set $here, the project root): sets $fedser to
# the binary to measure. FEDSER_BIN names a prebuilt one; otherwise the workspace's release
# build is brought up to date and used.
if [ -z "${FEDSER_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p fedser
fi
fedser=${FEDSER_BIN:-"$here/target/release/fedser"}
