package org.vbake.runtime;

import java.io.Closeable;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.List;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.image.Digest;
import org.vbake.image.LayerScan;
import org.vbake.image.ResolvedImage;
import org.vbake.storage.NotMirroredException;

/**
 * Writes an engine's storage tree on the host, without the engine, root or a filesystem: the tar
 * the engine's store would export to after {@code load}/{@code pull}, tagging and normalisation,
 * entry for entry. One implementation per engine version; the differential test holds it to the
 * engine's own output.
 */
public interface HostTreeWriter {

    /**
     * An image for the tree, in the order a bake loads them.
     *
     * @param tags       full references ({@code docker.io/library/x:1}), in the manifest's order
     * @param repoDigest the manifest digest it is pulled by (recorded as a RepoDigest), or null
     */
    record Image(ResolvedImage image, List<String> tags, Digest repoDigest) {
    }

    /** A tree read and checked: writing it cannot fail on the inputs any more. */
    interface Tree extends Closeable {
        /** Writes the tar (plain) to {@code out}; flushed, not closed. */
        void write(OutputStream out) throws IOException;

        /** Bytes of layer content held in the spool (for progress lines). */
        long contentBytes();
    }

    /**
     * Sees every entry of every layer the writer reads (each layer once, whichever images share
     * it), so that others who need a layer's content (the package listing) need not read it again.
     */
    interface LayerObserver {
        /** The observer of one layer's entries, or null. */
        org.vbake.storage.LayerSpool.Applier observe(ResolvedImage.Layer layer);

        LayerObserver NONE = layer -> null;
    }

    /** What it writes, for messages and the listing: {@code docker 26.1 overlay2}. */
    String describe();

    /**
     * Reads every layer once (digests checked) and builds the tree.
     *
     * @param spoolDir where layer contents wait until written (removed by {@link Tree#close})
     * @param epoch    SOURCE_DATE_EPOCH: the latest mtime written, and the time written where the
     *                 engine writes its clock
     * @param limits   how far a layer may expand (the spool holds it uncompressed)
     * @param observer sees each layer's entries as they are read
     * @throws NotMirroredException when an input needs something this writer cannot prove it does
     *                              as the engine does; nothing is left behind
     * @throws BadInputException    a layer expands beyond {@code limits}
     */
    Tree prepare(List<Image> images, Path spoolDir, long epoch, LayerScan.Rules limits, LayerObserver observer,
            EventListener events)
            throws IOException, NotMirroredException, BadInputException;
}
