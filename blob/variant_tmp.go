package blob

// VariantKey: placeholder until the variants branch lands.
func VariantKey(version, variant string) string {
	return "render/" + version[:2] + "/" + version + "/" + variant
}
