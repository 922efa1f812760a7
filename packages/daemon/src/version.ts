declare const __SBX_VERSION__: string | undefined;

/** This build's version (package.json's, put in by the bundler; "dev" when run from source). */
export const SBX_VERSION: string = typeof __SBX_VERSION__ === "string" ? __SBX_VERSION__ : "dev";
