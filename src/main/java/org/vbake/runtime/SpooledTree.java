package org.vbake.runtime;

import java.io.IOException;
import java.io.OutputStream;
import org.vbake.storage.FsTree;
import org.vbake.storage.LayerSpool;

/** A host writer's tree, ready to be written; holds the layer spool its files point into until closed. */
public final class SpooledTree implements HostTreeWriter.Tree {
    private final FsTree root;
    private final LayerSpool spool;
    private final long epoch;

    public SpooledTree(FsTree root, LayerSpool spool, long epoch) {
        this.root = root;
        this.spool = spool;
        this.epoch = epoch;
    }

    @Override
    public void write(OutputStream out) throws IOException {
        root.writeTar(out, epoch, x -> false);
    }

    @Override
    public long contentBytes() {
        return spool.size();
    }

    @Override
    public void close() throws IOException {
        spool.close();
    }
}
