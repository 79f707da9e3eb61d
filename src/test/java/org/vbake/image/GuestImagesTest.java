package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;

/** The recipe carried on the classpath and the cache key derived from it; nothing is built. */
class GuestImagesTest {

    private static final Path SOURCE_RECIPE = Path.of(System.getProperty("basedir", System.getProperty("user.dir")))
            .resolve("vm-images");

    @Test
    void recipeCarriesTheBuildScriptInitPackageListsAndAgentSource() throws Exception {
        Map<String, byte[]> recipe = GuestImages.recipe();

        assertThat(recipe).containsKeys("build.sh", "initramfs/init", "packages/docker.list",
                "packages/podman.list", "packages/common.list", "agent/main.go", "agent/go.mod");
        assertThat(recipe.keySet()).noneMatch(k -> k.startsWith("/") || k.contains("\\") || k.endsWith("vbake-agent"));
        assertThat(List.copyOf(recipe.keySet())).as("sorted, so the key does not depend on listing order")
                .isSorted();
        assertThat(recipe.get("build.sh")).isEqualTo(Files.readAllBytes(SOURCE_RECIPE.resolve("build.sh")));
        assertThat(new String(recipe.get("packages/docker.list"), StandardCharsets.UTF_8)).contains("docker");
    }

    @Test
    void keyIsStableForTheSameInput() {
        Map<String, byte[]> recipe = GuestImages.recipe();

        String key = GuestImages.key(recipe, "trixie", Arch.AARCH64, RuntimeKind.DOCKER);

        assertThat(key).matches("[0-9a-f]{64}");
        assertThat(GuestImages.key(GuestImages.recipe(), "trixie", Arch.AARCH64, RuntimeKind.DOCKER)).isEqualTo(key);
        assertThat(GuestImages.key(copy(recipe), "trixie", Arch.AARCH64, RuntimeKind.DOCKER)).isEqualTo(key);
    }

    @Test
    void keyDiffersPerSuiteArchAndRuntime() {
        Map<String, byte[]> recipe = GuestImages.recipe();
        String key = GuestImages.key(recipe, "trixie", Arch.AARCH64, RuntimeKind.DOCKER);

        assertThat(GuestImages.key(recipe, "bookworm", Arch.AARCH64, RuntimeKind.DOCKER)).isNotEqualTo(key);
        assertThat(GuestImages.key(recipe, "trixie", Arch.X86_64, RuntimeKind.DOCKER)).isNotEqualTo(key);
        assertThat(GuestImages.key(recipe, "trixie", Arch.AARCH64, RuntimeKind.PODMAN)).isNotEqualTo(key);
    }

    @Test
    void keyChangesWhenOneRecipeByteChanges() {
        Map<String, byte[]> recipe = GuestImages.recipe();
        String key = GuestImages.key(recipe, "trixie", Arch.X86_64, RuntimeKind.PODMAN);
        Map<String, byte[]> edited = copy(recipe);
        byte[] init = edited.get("initramfs/init");
        init[init.length / 2] ^= 1;

        assertThat(GuestImages.key(edited, "trixie", Arch.X86_64, RuntimeKind.PODMAN)).isNotEqualTo(key);
        assertThat(GuestImages.key(recipe, "trixie", Arch.X86_64, RuntimeKind.PODMAN))
                .as("the original recipe is untouched").isEqualTo(key);
    }

    @Test
    void keyChangesWhenAFileIsAddedOrRenamed() {
        Map<String, byte[]> recipe = GuestImages.recipe();
        String key = GuestImages.key(recipe, "trixie", Arch.X86_64, RuntimeKind.DOCKER);

        Map<String, byte[]> added = copy(recipe);
        added.put("packages/extra.list", new byte[0]);
        Map<String, byte[]> renamed = copy(recipe);
        renamed.put("packages/docker2.list", renamed.remove("packages/docker.list"));

        assertThat(GuestImages.key(added, "trixie", Arch.X86_64, RuntimeKind.DOCKER)).isNotEqualTo(key);
        assertThat(GuestImages.key(renamed, "trixie", Arch.X86_64, RuntimeKind.DOCKER)).isNotEqualTo(key);
    }

    @Test
    void keyTellsFilesApartWhenBytesMoveAcrossTheirBoundary() {
        Map<String, byte[]> one = new TreeMap<>(Map.of("a", bytes("xy"), "b", bytes("z")));
        Map<String, byte[]> other = new TreeMap<>(Map.of("a", bytes("x"), "b", bytes("yz")));

        assertThat(GuestImages.key(one, "trixie", Arch.AARCH64, RuntimeKind.DOCKER))
                .isNotEqualTo(GuestImages.key(other, "trixie", Arch.AARCH64, RuntimeKind.DOCKER));
    }

    private static Map<String, byte[]> copy(Map<String, byte[]> recipe) {
        Map<String, byte[]> copy = new TreeMap<>();
        recipe.forEach((k, v) -> copy.put(k, v.clone()));
        return copy;
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
