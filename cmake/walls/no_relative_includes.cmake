# cmake -DSOURCE_DIR=<repository> -P no_relative_includes.cmake
# The include roots cannot stop an include that climbs out of its own folder
# ("../store/sqlite/sqlite_store.h") or names an absolute path: this fails on any in src/.
file(GLOB_RECURSE files ${SOURCE_DIR}/src/*.h ${SOURCE_DIR}/src/*.cc)
set(found "")
foreach(file IN LISTS files)
  file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"(\\.\\.|/)")
  foreach(line IN LISTS lines)
    file(RELATIVE_PATH shown ${SOURCE_DIR} ${file})
    string(APPEND found "  ${shown}: ${line}\n")
  endforeach()
endforeach()
if(found)
  message(FATAL_ERROR "includes that get past the module walls; spell them from src/:\n${found}")
endif()
