// Package layers holds the test that keeps intercloud's imports pointing
// down its layers: cmd → demo → topology → hosts → components → drivers →
// base, as docs/architecture.md lists them. The test reads that table,
// runs go list over the module and fails when a package imports one of a
// layer above its own, when a package is in no layer (or in two), and when
// the README's layout table leaves a package out.
package layers
