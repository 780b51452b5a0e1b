# One helper declares every part of evformer the same way: a library `evformer_<part>` with
# the alias `evformer::<part>`, public headers under <part>/include, project warnings and the
# optional sanitizers. Links given in DEPENDS are the only allowed in-project dependencies,
# which is how the dependency direction of DESIGN.md is enforced.

# Apply the project's warning and sanitizer flags to one target (per target, never global).
function(evformer_target_flags target)
    target_compile_features(${target} PUBLIC cxx_std_20)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                             -Wno-sign-conversion)
    if(EVFORMER_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
    if(EVFORMER_SANITIZE)
        target_compile_options(${target} PRIVATE -fsanitize=address,undefined
                                                 -fno-omit-frame-pointer -fno-sanitize-recover=all)
        target_link_options(${target} PRIVATE -fsanitize=address,undefined)
    endif()
    if(EVFORMER_NATIVE)
        target_compile_options(${target} PRIVATE -march=native)
    endif()
endfunction()

# evformer_add_part(<part> SOURCES <files...> [DEPENDS <targets...>] [PRIVATE_DEPENDS <targets...>])
function(evformer_add_part part)
    cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS;PRIVATE_DEPENDS" ${ARGN})
    add_library(evformer_${part} STATIC ${ARG_SOURCES})
    add_library(evformer::${part} ALIAS evformer_${part})
    target_include_directories(evformer_${part} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(evformer_${part} PUBLIC ${ARG_DEPENDS} PRIVATE ${ARG_PRIVATE_DEPENDS})
    evformer_target_flags(evformer_${part})
endfunction()
